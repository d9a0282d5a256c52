/**
 * The worker's glue: answers the page's requests, owns the `SyncState`, and handles the server's
 * frames one at a time, in order, through the change store and the outbox of the database session.
 */
import { batchChanges, isBatchMessage, type BatchMessage } from '../protocol/batches.ts';
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
import type { ParseResult, ServerMessage } from '../protocol/wire.ts';
import type { PageToWorker, WorkerToPage } from '../protocol/worker-messages.ts';
import type { ConnectionListener } from './connection.ts';
import { FrameQueue } from './frame-queue.ts';
import type { OutboxListener } from './outbox.ts';
import { PageApply } from './page-apply.ts';
import { parseRequest } from './requests.ts';
import { Sessions, type Session, type SessionOptions } from './session.ts';
import { StatusPosts } from './status-posts.ts';

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
  readonly #frames = new FrameQueue();
  #draining = false;
  readonly #pageApply = new PageApply((event) => this.#post(event));

  constructor(endpoint: WorkerEndpointLike, options: SyncEngineOptions) {
    this.#endpoint = endpoint;
    this.#statusPosts = new StatusPosts(INITIAL_STATE, (state) => endpoint.postMessage({ type: 'status', state }));
    this.#sessions = new Sessions(options, {
      listeners: (owner) => ({ connection: this.#connectionListener(owner), outbox: this.#outboxListener(owner) }),
      opened: ({ connection, clientId, store, outbox }) => {
        connection.setOnline(this.#online);
        this.#update({ ...connection.snapshot, clientId, lastLSN: store.lastLSN, pendingOperations: outbox.pendingCount });
      },
      lost: (why) => {
        this.#frames.clear();
        this.#update({ syncing: false, progress: null });
        this.#reportError({ code: 'storage', message: `The database was closed: ${why}; reopening it` });
      },
      reopenFailed: (error) => {
        this.#update({ status: SyncStatus.error, isConnected: false, isConnecting: false });
        this.#reportError({ code: 'storage', message: `Could not reopen the database: ${errorMessage(error)}` });
      },
      operationLost: (id) => this.#post({ type: 'operation_error', id, message: OPERATION_LOST }),
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
      case 'network':
        this.#online = request.online;
        this.#update({ online: request.online });
        this.#sessions.live?.connection.setOnline(request.online);
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
        return undefined;
      }
      case 'operation':
        await (await this.#sessions.ready()).outbox.add(request.operation);
        return undefined;
      case 'clear_operations':
        return (await this.#sessions.ready()).outbox.clear();
      case 'applied':
        this.#pageApply.answer(request);
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
      completed: (id, lsn) => this.#post({ type: 'operation_complete', id, ...(lsn === undefined ? {} : { lsn }) }),
      failed: (id, message) => this.#post({ type: 'operation_error', id, message }),
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
          await this.#applyBatches(session, step.batches.map(({ message }) => message));
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
    this.#reportError({ code: 'storage', message: error.message });
    session.connection.restart('storage error');
  }

  async #handleFrame(session: Session, parsed: ParseResult<ServerMessage>): Promise<void> {
    if (!parsed.ok) {
      this.#reportError({ code: 'protocol', message: `Dropped a frame from the server: ${parsed.error}` });
      return;
    }
    const { message, invalid } = parsed;
    if (invalid.length > 0) this.#reportInvalid(message.type, invalid);
    if (isBatchMessage(message)) return this.#applyBatches(session, [message]);
    switch (message.type) {
      case 'sync_request':
        session.connection.sendSync();
        return;
      case 'sync_start':
        this.#syncStarted(message.lsn, message.total);
        return;
      case 'sync_complete':
        this.#update({ syncing: false, progress: null });
        session.connection.resetBackoff();
        this.#post({ type: 'sync_completed', lsn: session.store.lastLSN });
        return;
      case 'sync_error':
        this.#update({ syncing: false, progress: null });
        this.#reportError({ code: 'server', message: `The server could not serve the sync: ${message.message}` });
        return;
      case 'operation_complete':
        session.outbox.complete(message.id, message.lsn);
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

  async #applyBatches(session: Session, messages: BatchMessage[]): Promise<void> {
    if (!this.#state.syncing && messages.some((message) => message.type === 'sync_data')) this.#syncStarted();
    const batches = messages.map((message) => ({ changes: batchChanges(message), lsn: message.lsn }));
    const { results, failure } = this.#sessions.config?.applyOnPage
      ? await this.#pageApply.apply(session.store, batches)
      : { results: await session.store.applyBatches(batches), failure: undefined };
    // Committed to a database that was lost since: the page was told it starts over.
    if (session !== this.#sessions.live) return;
    // The state catches up with the whole commit before the first event: one status for all.
    const events: NonStatusMessage[] = [];
    results.forEach((result, index) => {
      const { lsn } = batches[index]!;
      if (!result.applied) return;
      let { changes } = batches[index]!;
      if (result.unstorable.length > 0) {
        const skipped = new Set(result.unstorable.map((item) => item.index));
        changes = changes.filter((_, at) => !skipped.has(at));
        this.#reportError({
          code: 'invalid_change',
          message: `Skipped ${result.unstorable.length} change(s) the local store cannot hold: ${result.unstorable.map((item) => item.reason).join('; ')}`,
        }, result.unstorable);
      }
      events.push({ type: 'changes', changes, ...(lsn === undefined ? {} : { lsn: result.lastLSN }) });
      const { progress } = this.#state;
      if (!this.#state.syncing || !progress) {
        this.#update({ lastLSN: result.lastLSN });
        return;
      }
      const next: SyncProgress = Object.freeze({ ...progress, applied: progress.applied + changes.length });
      this.#update({ lastLSN: result.lastLSN, progress: next });
      events.push({ type: 'sync_progress', ...next });
    });
    for (const event of events) this.#post(event);
    if (failure) throw failure;
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
  #post(message: NonStatusMessage): void {
    this.#statusPosts.flush();
    this.#endpoint.postMessage(message);
  }
}

/** Everything the engine posts itself; `status` goes through {@link StatusPosts}. */
type NonStatusMessage = Exclude<WorkerToPage, { type: 'status' }>;
