/**
 * The worker's glue: answers the page's requests, owns the `SyncState`, and handles the server's
 * frames one at a time, in order, through the change store and the outbox of the database session.
 */
import { isBatchMessage } from '../protocol/batches.ts';
import type { InvalidChange } from '../protocol/change.ts';
import { errorMessage, InvalidStateError, RequestError, serializeError, StorageError } from '../protocol/errors.ts';
import type { LSN } from '../protocol/lsn.ts';
import {
  INITIAL_STATE,
  SyncStatus,
  type SyncErrorDetail,
  type SyncProgress,
  type SyncState,
} from '../protocol/state.ts';
import { parseServerFrame, type ParseResult, type ServerMessage } from '../protocol/wire.ts';
import type { PageToWorker, WorkerPost, WorkerToPage } from '../protocol/worker-messages.ts';
import type { ConnectionListener } from './connection-types.ts';
import { Answers, refused } from './answers.ts';
import { FrameQueue, isAnswer } from './frame-queue.ts';
import { PageApply } from './page-apply.ts';
import { parseRequest } from './requests.ts';
import { Sessions, type Session, type SessionOptions } from './session.ts';
import { StatusPosts } from './status-posts.ts';
import { StoreWrites } from './store-writes.ts';

/** The part of a worker's global scope (or a `MessagePort`) the engine talks through. */
export interface WorkerEndpointLike {
  postMessage(message: WorkerToPage): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

export type SyncEngineOptions = SessionOptions;

/** What an operation whose outbox record went with the database is answered. */
const OPERATION_LOST =
  'The operation was dropped: the database holding it was deleted or closed before the server acknowledged it';

/** Starts an engine that serves the `PageToWorker` protocol on `endpoint`. */
export function startSyncWorker(endpoint: WorkerEndpointLike, options: SyncEngineOptions): SyncEngine {
  const engine = new SyncEngine(endpoint, options);
  endpoint.addEventListener('message', (event) => engine.receive(event.data));
  return engine;
}

export class SyncEngine {
  readonly #endpoint: WorkerEndpointLike;
  #state: SyncState = INITIAL_STATE;
  readonly #statusPosts: StatusPosts;
  readonly #sessions: Sessions;
  #online = true;
  #visible = true;
  readonly #frames = new FrameQueue();
  #draining = false;
  readonly #writes = new StoreWrites({
    state: () => this.#state,
    update: (patch) => this.#update(patch),
    post: (message) => this.#post(message),
    reportError: (detail, invalid) => this.#reportError(detail, invalid),
    syncStarted: () => this.#syncStarted(),
    live: () => this.#sessions.live,
    onPage: () => this.#sessions.config?.applyOnPage === true,
  }, new PageApply((event) => this.#post(event)));
  /**
   * Every batch of the catch-up under way was handled (none dropped as malformed or unstored),
   * so its `sync_complete.lsn` may become the resume point.
   */
  #catchUpWhole = false;
  /** The database was lost: the session opened next replaces it. */
  #reopening = false;
  readonly #answers = new Answers({
    current: (session) => this.#sessions.current(session),
    post: (message) => this.#post(message),
    told: (fields) => this.#statusPosts.told(fields),
    update: (patch) => this.#update(patch),
    reportError: (detail) => this.#reportError(detail),
  });

  constructor(endpoint: WorkerEndpointLike, options: SyncEngineOptions) {
    this.#endpoint = endpoint;
    this.#statusPosts = new StatusPosts(INITIAL_STATE, (state) => endpoint.postMessage({ type: 'status', state }));
    this.#sessions = new Sessions(options, {
      listeners: (owner) => ({
        connection: this.#connectionListener(owner),
        outbox: this.#answers.listener(owner),
        folder: {
          idle: () => this.#frames.size === 0 && !this.#draining,
          folded: (through) => { if (this.#sessions.current(owner())) this.#post({ type: 'folded', through }); },
          failed: (message) => { if (this.#sessions.current(owner())) this.#reportError({ code: 'storage', message }); },
        },
      }),
      opened: (session) => {
        const { connection, clientId, store, outbox } = session;
        connection.setOnline(this.#online);
        connection.setVisible(this.#visible);
        this.#update({ ...connection.snapshot, clientId, lastLSN: store.lastLSN, pendingOperations: outbox.pendingCount });
        if (this.#reopening) this.#post({ type: 'store_reopened' });
        this.#reopening = false;
        session.folder.request(); // what an earlier worker stored and did not fold
      },
      lost: (why) => {
        this.#reopening = true;
        this.#frames.clear();
        this.#update({ syncing: false, progress: null });
        this.#reportError({ code: 'storage', message: `The database was closed: ${why}; reopening it` });
      },
      reopenFailed: (error) => {
        this.#update({ status: SyncStatus.error, isConnected: false, isConnecting: false });
        this.#reportError({ code: 'storage', message: `Could not reopen the database: ${errorMessage(error)}` });
      },
      operationLost: (operation) => this.#post(refused(operation, OPERATION_LOST)),
    });
  }

  get state(): SyncState {
    return this.#state;
  }

  /** Handles one message from the page; every request gets exactly one `result`. */
  receive(data: unknown): void {
    const parsed = parseRequest(data);
    if (!parsed.ok) {
      if (parsed.requestId !== undefined) {
        this.#answerError(parsed.requestId, new RequestError(parsed.error));
      }
      return;
    }
    const { requestId } = parsed.request;
    this.#handle(parsed.request).then(
      (value) => this.#post(value === undefined
        ? { type: 'result', requestId, ok: true }
        : { type: 'result', requestId, ok: true, value }),
      (error: unknown) => this.#answerError(requestId, error),
    );
  }

  async #handle(request: PageToWorker): Promise<unknown> {
    switch (request.type) {
      case 'init':
        await this.#sessions.init(request.config);
        return this.#state;
      case 'get_status':
        return this.#state;
      case 'token':
        await this.#sessions.ready();
        this.#sessions.setToken(request.token);
        return undefined;
      case 'network':
        this.#online = request.online;
        this.#update({ online: request.online });
        this.#sessions.live?.connection.setOnline(request.online);
        return undefined;
      case 'visibility':
        this.#visible = request.visible;
        this.#sessions.live?.connection.setVisible(request.visible);
        return undefined;
      case 'wake':
        this.#sessions.live?.connection.wake(request.reason);
        return undefined;
      case 'connect':
        (await this.#sessions.ready()).connection.connect();
        return undefined;
      case 'force_connect':
        (await this.#sessions.ready()).connection.forceConnect();
        return undefined;
      case 'disconnect':
        await (await this.#sessions.ready()).connection.disconnect(request.graceful);
        return undefined;
      case 'send_message': {
        const { connection, outbox } = await this.#sessions.ready();
        if (!connection.isOpen) throw new InvalidStateError('Not connected: the message was not sent');
        if (!outbox.sendFrame(request.payload)) throw new InvalidStateError('The socket refused the message');
        return undefined;
      }
      case 'sync': {
        const { connection } = await this.#sessions.ready();
        if (!connection.sendSync()) throw new InvalidStateError('Not connected: sync was not sent');
        this.#catchUpWhole = true;
        return undefined;
      }
      case 'operation':
        await (await this.#sessions.ready()).outbox.add(request.operation);
        return undefined;
      case 'stored':
        await (await this.#sessions.ready()).outbox.addStored(request.operations);
        return undefined;
      case 'clear_operations':
        return (await this.#sessions.ready()).outbox.clear();
      case 'applied':
        this.#writes.answer(request);
        return undefined;
      default: {
        const unhandled: never = request;
        throw new RequestError(`Unhandled request ${JSON.stringify(unhandled)}`);
      }
    }
  }

  #connectionListener(owner: () => Session | undefined): ConnectionListener {
    return {
      change: (snapshot) => {
        if (this.#sessions.current(owner())) this.#update(snapshot);
      },
      open: () => {
        const session = owner();
        if (!this.#sessions.current(session)) return;
        this.#update({ lastError: null });
        this.#catchUpWhole = true; // the connection sent its sync
        this.#post({ type: 'connected', clientId: this.#state.clientId, lastLSN: this.#state.lastLSN });
        session?.outbox.pump();
      },
      message: (data) => {
        if (this.#sessions.current(owner())) this.#enqueue(data);
      },
      close: (info) => {
        const session = owner();
        if (!this.#sessions.current(session)) return;
        session?.outbox.connectionClosed(info.code);
        this.#update({ syncing: false, progress: null });
        this.#post({ type: 'disconnected', ...info });
      },
      reconnecting: (info) => {
        if (this.#sessions.current(owner())) this.#post({ type: 'reconnecting', ...info });
      },
      error: (detail) => {
        if (this.#sessions.current(owner())) this.#reportError(detail);
      },
    };
  }

  // ---- server frames, one at a time ------------------------------------------------------------

  #enqueue(data: unknown): void {
    const parsed = parseServerFrame(data);
    const session = this.#sessions.live;
    // An answer to an operation is taken at once, not behind a commit being written: the page's
    // reads show the operation until the store does, whatever comes first.
    if (session && parsed.ok && isAnswer(parsed.message)) {
      if (parsed.message.type !== 'pong') this.#answers.handle(session, parsed.message);
      return;
    }
    this.#frames.push(parsed);
    if (!this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    const session = this.#sessions.live;
    if (!session || this.#draining) return;
    this.#draining = true;
    try {
      while (session === this.#sessions.live) {
        const step = this.#frames.next();
        if (!step) break;
        try {
          if (step.kind === 'frame') {
            await this.#handleFrame(session, step.frame);
            continue;
          }
          for (const { message, invalid } of step.batches) {
            if (invalid.length > 0) this.#reportInvalid(message.type, invalid);
          }
          await this.#writes.applyBatches(session, step.batches.map(({ message }) => message));
          for (const frame of step.after) await this.#handleFrame(session, frame);
        } catch (error) {
          this.#frameFailed(session, error);
        }
      }
    } finally {
      this.#draining = false;
    }
    // The session was lost while a write ran: frames of the next one may be waiting.
    if (this.#frames.size > 0) void this.#drain();
    else this.#sessions.live?.folder.request();
  }

  /**
   * A write failed: nothing of the batch is stored and the LSN did not move. The frames behind it
   * are dropped and the connection restarts, so the server resends from the stored LSN.
   */
  #frameFailed(session: Session, error: unknown): void {
    // A write to a database that was lost meanwhile: the loss is reported already.
    if (error instanceof StorageError && session !== this.#sessions.live) return;
    if (!(error instanceof StorageError)) {
      this.#reportError({ code: 'worker', message: `A server frame could not be handled: ${errorMessage(error)}` });
      return;
    }
    this.#frames.clear();
    this.#catchUpWhole = false;
    this.#reportError({ code: 'storage', message: error.message });
    session.connection.restart('storage error');
  }

  async #handleFrame(session: Session, parsed: ParseResult<ServerMessage>): Promise<void> {
    if (!parsed.ok) {
      // It may have been a batch: the catch-up's end no longer says what is stored.
      this.#catchUpWhole = false;
      this.#reportError({ code: 'protocol', message: `Dropped a frame from the server: ${parsed.error}` });
      return;
    }
    const { message, invalid } = parsed;
    if (invalid.length > 0) this.#reportInvalid(message.type, invalid);
    if (isBatchMessage(message)) return this.#writes.applyBatches(session, [message]);
    switch (message.type) {
      case 'sync_request':
        if (session.connection.sendSync()) this.#catchUpWhole = true;
        return;
      case 'sync_start':
        this.#syncStarted(message.lsn, message.total);
        return;
      case 'sync_complete':
        if (message.lsn !== undefined && this.#catchUpWhole) await this.#writes.reachCatchUpEnd(session, message.lsn);
        this.#update({ syncing: false, progress: null });
        session.connection.resetBackoff();
        this.#post({ type: 'sync_completed', lsn: session.store.lastLSN });
        return;
      case 'reset':
        if (await this.#writes.reset(session, message.reason)) this.#catchUpWhole = true;
        return;
      case 'sync_error':
        this.#update({ syncing: false, progress: null });
        this.#reportError({ code: 'server', message: `The server could not serve the sync: ${message.message}` });
        return;
      case 'operation_complete':
      case 'operation_error':
        this.#answers.handle(session, message);
        return;
      case 'pong':
        return;
      case 'error':
        this.#reportError({ code: 'server', message: message.message });
        return;
      case 'unknown':
        this.#post({ type: 'message', message: message.message });
        return;
      default: {
        const unhandled: never = message;
        throw new Error(`Unhandled server message ${JSON.stringify(unhandled)}`);
      }
    }
  }

  #syncStarted(lsn?: LSN, total?: number): void {
    const progress: SyncProgress = Object.freeze(total === undefined ? { applied: 0 } : { applied: 0, total });
    this.#update({ syncing: true, progress });
    this.#post({
      type: 'sync_started',
      ...(lsn === undefined ? {} : { lsn }),
      ...(total === undefined ? {} : { total }),
    });
  }

  #reportInvalid(frameType: ServerMessage['type'], invalid: InvalidChange[]): void {
    const list = invalid.map(({ index, reason }) => `#${index}: ${reason}`).join('; ');
    this.#reportError(
      { code: 'invalid_change', message: `Skipped ${invalid.length} invalid change(s) in "${frameType}": ${list}` },
      invalid,
    );
  }

  // ---- state and posting -----------------------------------------------------------------------

  #reportError(detail: SyncErrorDetail, invalid?: InvalidChange[]): void {
    this.#update({ lastError: Object.freeze({ code: detail.code, message: detail.message }) });
    this.#post({ type: 'error', ...detail, ...(invalid === undefined ? {} : { invalid }) });
  }

  /** Replaces the state with a new frozen snapshot, when any field changed, and schedules its post. */
  #update(patch: Partial<SyncState>): void {
    const current = this.#state;
    const changed = (Object.keys(patch) as (keyof SyncState)[]).some((key) => patch[key] !== current[key]);
    if (!changed) return;
    this.#state = Object.freeze({ ...current, ...patch });
    this.#statusPosts.changed(this.#state);
  }

  #answerError(requestId: number, error: unknown): void {
    this.#post({ type: 'result', requestId, ok: false, error: serializeError(error) });
  }

  /** Posts an event or a result, after the state it goes with. */
  #post(message: WorkerPost): void {
    this.#statusPosts.flush();
    this.#endpoint.postMessage(message);
  }
}

