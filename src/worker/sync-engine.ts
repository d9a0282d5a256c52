/**
 * The worker's glue: answers the page's requests, owns the `SyncState`, and handles the server's
 * frames one at a time, in order, through the change store and the outbox of the database session.
 */
import { isBatchMessage } from '../protocol/batches.ts';
import type { InvalidChange } from '../protocol/change.ts';
import { effectsOf, entitiesOf } from '../protocol/effects.ts';
import { errorMessage, InvalidStateError, RequestError, serializeError, StorageError } from '../protocol/errors.ts';
import type { LSN } from '../protocol/lsn.ts';
import {
  INITIAL_STATE,
  SyncStatus,
  type SyncErrorDetail,
  type SyncProgress,
  type SyncState,
  type QueuedOperation,
} from '../protocol/state.ts';
import type { ParseResult, ServerMessage } from '../protocol/wire.ts';
import type { PageToWorker, WorkerPost, WorkerToPage } from '../protocol/worker-messages.ts';
import type { ConnectionListener } from './connection.ts';
import { FrameQueue } from './frame-queue.ts';
import type { OutboxListener } from './outbox.ts';
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

  constructor(endpoint: WorkerEndpointLike, options: SyncEngineOptions) {
    this.#endpoint = endpoint;
    this.#statusPosts = new StatusPosts(INITIAL_STATE, (state) => endpoint.postMessage({ type: 'status', state }));
    this.#sessions = new Sessions(options, {
      listeners: (owner) => ({ connection: this.#connectionListener(owner), outbox: this.#outboxListener(owner) }),
      opened: ({ connection, clientId, store, outbox }) => {
        connection.setOnline(this.#online);
        connection.setVisible(this.#visible);
        this.#update({ ...connection.snapshot, clientId, lastLSN: store.lastLSN, pendingOperations: outbox.pendingCount });
        if (this.#reopening) this.#post({ type: 'store_reopened' });
        this.#reopening = false;
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

  #outboxListener(owner: () => Session | undefined): OutboxListener {
    return {
      // An answer the server gave stands even when the session ended since.
      completed: (id, lsn, settled) => this.#post({
        type: 'operation_complete', id, ...(lsn === undefined ? {} : { lsn }), ...(settled ? { settled: true } : {}),
      }),
      failed: (operation, message) => this.#post(refused(operation, message)),
      pendingChanged: (count) => {
        if (this.#sessions.current(owner())) this.#update({ pendingOperations: count });
      },
      // A lost session's deletes fail with its database: that loss is reported once already.
      storageError: (message) => {
        if (this.#sessions.current(owner())) this.#reportError({ code: 'storage', message });
      },
    };
  }

  // ---- server frames, one at a time ------------------------------------------------------------

  #enqueue(data: unknown): void {
    this.#frames.push(data);
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
        session.outbox.complete(message.id, message.lsn, session.store.lastLSN);
        return;
      case 'operation_error':
        if (!message.retryable) {
          session.outbox.reject(message.id, message.message);
        } else if (session.outbox.defer(message.id)) {
          this.#reportError({
            code: 'server',
            message: `The server could not apply operation ${message.id} now (${message.message}); operations stay queued and are sent again in ${Math.round(session.outbox.retryDelay / 100) / 10} s`,
          });
        }
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


/** The `operation_error` for an operation refused for good, naming the entities its effects touched. */
function refused(operation: QueuedOperation, message: string): WorkerPost {
  return { type: 'operation_error', id: operation.id, message, entities: entitiesOf(effectsOf(operation)) };
}
