/**
 * The worker's glue: answers the page's requests, owns the `SyncState`, and handles the server's
 * frames one at a time, in order, through the change store and the outbox.
 */
import { LocalStore } from '../db/local-store.ts';
import { batchChanges, isBatchMessage, type BatchMessage } from '../protocol/batches.ts';
import type { InvalidChange } from '../protocol/change.ts';
import type { LSN } from '../protocol/lsn.ts';
import {
  INITIAL_STATE,
  SyncStatus,
  type SyncErrorDetail,
  type SyncProgress,
  type SyncState,
} from '../protocol/state.ts';
import { parseServerFrame, type ParseResult, type ServerMessage } from '../protocol/wire.ts';
import type {
  PageToWorker,
  WorkerConfig,
  WorkerToPage,
} from '../protocol/worker-messages.ts';
import { ChangeStore, freshBatches, type ApplyResult, type Batch } from './change-store.ts';
import { Connection, type ConnectionListener, type WebSocketConstructor } from './connection.ts';
import { errorMessage, InvalidStateError, RequestError, serializeError, StorageError } from '../protocol/errors.ts';
import { DEFAULT_IN_FLIGHT_WINDOW, Outbox, type OutboxListener } from './outbox.ts';
import { parseRequest } from './requests.ts';
import { StatusPosts } from './status-posts.ts';

/** The part of a worker's global scope (or a `MessagePort`) the engine talks through. */
export interface WorkerEndpointLike {
  postMessage(message: WorkerToPage): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

export interface SyncEngineOptions {
  /** The global `WebSocket` in production; mock-socket's in tests. */
  WebSocket: WebSocketConstructor;
  /** Jitter source for the reconnection delay; default `Math.random`. */
  random?: () => number;
  /** Operations sent and not yet acknowledged, at most. */
  inFlightWindow?: number;
}

interface Session {
  readonly local: LocalStore;
  readonly store: ChangeStore;
  readonly outbox: Outbox;
  readonly connection: Connection;
}

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
  readonly #options: SyncEngineOptions;
  #state: SyncState = INITIAL_STATE;
  readonly #statusPosts: StatusPosts;
  /** What `init` was given; a reopened database uses it again. */
  #config: WorkerConfig | undefined;
  /**
   * Settles when `init` has finished; set while it runs. Replaced by the reopening when the
   * database is lost, so requests that arrive meanwhile wait for the new session.
   */
  #session: Promise<Session> | undefined;
  /** The same session, once ready; undefined while a lost database is being reopened. */
  #live: Session | undefined;
  #online = true;
  /** Server frames not yet handled, parsed, in arrival order. */
  #frames: ParseResult<ServerMessage>[] = [];
  #draining = false;
  /** `apply` events the page has not answered yet (`applyOnPage`). */
  readonly #applies = new Map<string, (answer: PageApplied) => void>();
  /** Makes this worker's `apply` ids unlike any other worker's. */
  readonly #applyPrefix = crypto.randomUUID();
  #applyCount = 0;

  constructor(endpoint: WorkerEndpointLike, options: SyncEngineOptions) {
    this.#endpoint = endpoint;
    this.#options = options;
    this.#statusPosts = new StatusPosts(INITIAL_STATE, (state) => endpoint.postMessage({ type: 'status', state }));
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
        return this.#init(request.config);
      case 'get_status':
        return this.#state;
      case 'network':
        this.#online = request.online;
        this.#update({ online: request.online });
        this.#live?.connection.setOnline(request.online);
        return undefined;
      case 'connect':
        (await this.#ready()).connection.connect();
        return undefined;
      case 'force_connect':
        (await this.#ready()).connection.forceConnect();
        return undefined;
      case 'disconnect':
        await (await this.#ready()).connection.disconnect(request.graceful);
        return undefined;
      case 'send_message': {
        const { connection, outbox } = await this.#ready();
        if (!connection.isOpen) throw new InvalidStateError('Not connected: the message was not sent');
        if (!outbox.sendFrame(request.payload)) throw new InvalidStateError('The socket refused the message');
        return undefined;
      }
      case 'sync': {
        const { connection } = await this.#ready();
        if (!connection.sendSync()) throw new InvalidStateError('Not connected: sync was not sent');
        return undefined;
      }
      case 'operation':
        await (await this.#ready()).outbox.add(request.operation);
        return undefined;
      case 'clear_operations':
        return (await this.#ready()).outbox.clear();
      case 'applied': {
        const settle = this.#applies.get(request.applyId);
        if (!settle) throw new InvalidStateError(`No batches wait for the answer ${JSON.stringify(request.applyId)}`);
        this.#applies.delete(request.applyId);
        settle(request);
        return undefined;
      }
      default: {
        const unhandled: never = request;
        throw new RequestError(`Unhandled request ${JSON.stringify(unhandled)}`);
      }
    }
  }

  #ready(): Promise<Session> {
    return this.#session ?? Promise.reject(new InvalidStateError('The worker is not initialized: send init first'));
  }

  async #init(config: WorkerConfig): Promise<SyncState> {
    if (this.#session) throw new InvalidStateError('The worker is already initialized');
    this.#config = config;
    const session = this.#open(config);
    this.#session = session;
    try {
      await session;
    } catch (error) {
      this.#session = undefined;
      throw error;
    }
    return this.#state;
  }

  async #open(config: WorkerConfig): Promise<Session> {
    let session: Session | undefined;
    /** Why the database was closed under us before the session was ready, if it was. */
    let closedEarly: string | undefined;
    const lost = (why: string): void => {
      if (session) this.#databaseLost(session, why);
      else closedEarly ??= why;
    };
    let local: LocalStore;
    try {
      local = await LocalStore.open(config.dbName, {
        onBlocking: () => lost('another connection is upgrading or deleting it'),
        onTerminated: () => lost('the browser closed it'),
      });
    } catch (error) {
      throw new StorageError(`Could not open the database ${JSON.stringify(config.dbName)}: ${errorMessage(error)}`);
    }
    try {
      const clientId = await local.clientId(config.clientId).catch((error: unknown) => {
        throw new StorageError(`Could not load or create the client id: ${errorMessage(error)}`);
      });
      const store = new ChangeStore(local.db);
      await store.load(config.applyOnPage ? 'page' : 'builtin');
      const connection = new Connection({
        url: config.url,
        heartbeatInterval: config.heartbeatInterval,
        backoffInitial: config.backoffInitial,
        backoffMax: config.backoffMax,
        WebSocket: this.#options.WebSocket,
        random: this.#options.random ?? Math.random,
        identity: () => ({
          clientId,
          lastLSN: store.lastLSN,
          ...(config.token === undefined ? {} : { token: config.token }),
        }),
        listener: this.#connectionListener(() => session),
      });
      const outbox = new Outbox(local, connection, this.#outboxListener(() => session), this.#options.inFlightWindow ?? DEFAULT_IN_FLIGHT_WINDOW);
      await outbox.load();
      if (closedEarly !== undefined) {
        throw new StorageError(`The database ${JSON.stringify(config.dbName)} was closed while it was being opened: ${closedEarly}`);
      }
      // No await from here on: a `network` request cannot slip in between.
      connection.setOnline(this.#online);
      this.#update({
        ...connection.snapshot,
        clientId,
        lastLSN: store.lastLSN,
        pendingOperations: outbox.pendingCount,
      });
      session = { local, store, outbox, connection };
      this.#live = session;
      return session;
    } catch (error) {
      local.close();
      throw error;
    }
  }

  /**
   * The database was closed under the live session: another connection upgrades or deletes it
   * (an app's `indexedDB.deleteDatabase` on logout), or the browser closed it. Every later
   * transaction on it would fail, so the session ends: its connection stops, one `storage` error
   * is reported, and the database is opened again as a fresh session (a deleted one comes back
   * empty: LSN 0/0, a new client id unless configured), which connects if the old one was wanted.
   *
   * Reopening at once does not get in the way of the request that closed it: IndexedDB serves the
   * opens and deletes of one database in the order they were made, and the versionchange that
   * closed this one is sent while that request is already being served, so the new open waits
   * until the deletion or upgrade went through.
   */
  #databaseLost(lost: Session, why: string): void {
    if (lost !== this.#live) return; // already handled
    const wanted = lost.connection.wanted;
    lost.connection.stop('database closed', wanted);
    this.#live = undefined;
    this.#frames = [];
    this.#update({ syncing: false, progress: null });
    this.#reportError({ code: 'storage', message: `The database was closed: ${why}; reopening it` });
    lost.local.close();
    const reopened = this.#reopen(lost, wanted);
    this.#session = reopened;
    // Reported by #reopen; requests waiting on it are answered with the error.
    reopened.catch(() => {});
  }

  /** Opens the database again after a loss, once: a failure is reported, and the worker stays down. */
  async #reopen(lost: Session, wanted: boolean): Promise<Session> {
    const config = this.#config;
    if (!config) throw new InvalidStateError('The worker is not initialized');
    let session: Session;
    try {
      session = await this.#open(config);
    } catch (error) {
      this.#update({ status: SyncStatus.error, isConnected: false, isConnecting: false });
      this.#reportError({ code: 'storage', message: `Could not reopen the database: ${errorMessage(error)}` });
      throw error;
    }
    // An operation whose record is gone with the database is never sent: its promise must not hang.
    for (const id of lost.outbox.pendingIds()) {
      if (!session.outbox.has(id)) this.#post({ type: 'operation_error', id, message: OPERATION_LOST });
    }
    if (wanted) session.connection.connect();
    return session;
  }

  /** False for a session that was lost: its late callbacks change nothing. Open while opening. */
  #current(session: Session | undefined): boolean {
    return session === undefined || session === this.#live;
  }

  #connectionListener(owner: () => Session | undefined): ConnectionListener {
    return {
      change: (snapshot) => {
        if (this.#current(owner())) this.#update(snapshot);
      },
      open: () => {
        const session = owner();
        if (!this.#current(session)) return;
        this.#update({ lastError: null });
        this.#post({ type: 'connected', clientId: this.#state.clientId, lastLSN: this.#state.lastLSN });
        session?.outbox.pump();
      },
      message: (data) => {
        if (this.#current(owner())) this.#enqueue(data);
      },
      close: (info) => {
        const session = owner();
        if (!this.#current(session)) return;
        session?.outbox.connectionClosed(info.code);
        this.#update({ syncing: false, progress: null });
        this.#post({ type: 'disconnected', ...info });
      },
      reconnecting: (info) => {
        if (this.#current(owner())) this.#post({ type: 'reconnecting', ...info });
      },
      error: (detail) => {
        if (this.#current(owner())) this.#reportError(detail);
      },
    };
  }

  #outboxListener(owner: () => Session | undefined): OutboxListener {
    return {
      // An answer the server gave stands even when the session ended since.
      completed: (id, lsn) => this.#post({ type: 'operation_complete', id, ...(lsn === undefined ? {} : { lsn }) }),
      failed: (id, message) => this.#post({ type: 'operation_error', id, message }),
      pendingChanged: (count) => {
        if (this.#current(owner())) this.#update({ pendingOperations: count });
      },
      // A lost session's deletes fail with its database: that loss is reported once already.
      storageError: (message) => {
        if (this.#current(owner())) this.#reportError({ code: 'storage', message });
      },
    };
  }

  // ---- server frames, one at a time ------------------------------------------------------------

  #enqueue(data: unknown): void {
    this.#frames.push(parseServerFrame(data));
    if (!this.#draining) void this.#drain();
  }

  async #drain(): Promise<void> {
    const session = this.#live;
    if (!session || this.#draining) return;
    this.#draining = true;
    try {
      while (this.#frames.length > 0 && session === this.#live) {
        try {
          const { batches, after } = this.#takeGroup();
          if (batches.length === 0) {
            await this.#handleFrame(session, this.#frames.shift()!);
            continue;
          }
          await this.#applyBatches(session, batches);
          for (const frame of after) await this.#handleFrame(session, frame);
        } catch (error) {
          this.#frameFailed(session, error);
        }
      }
    } finally {
      this.#draining = false;
    }
    // The session was lost while a write ran: frames of the next one may be waiting.
    if (this.#frames.length > 0) void this.#drain();
  }

  /**
   * A write failed: nothing of the batch is stored and the LSN did not move. The frames behind it
   * are dropped and the connection restarts, so the server resends from the stored LSN.
   */
  #frameFailed(session: Session, error: unknown): void {
    // A write to a database that was lost meanwhile: the loss is reported already.
    if (error instanceof StorageError && session !== this.#live) return;
    if (!(error instanceof StorageError)) {
      this.#reportError({ code: 'worker', message: `A server frame could not be handled: ${errorMessage(error)}` });
      return;
    }
    this.#frames = [];
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

  /**
   * Takes the batch frames at the head of the queue (up to a size), so that frames which arrived
   * while the last transaction ran are written in one transaction. Acknowledgements between them
   * come along and are handled, in order, after the commit: an ack never overtakes its change.
   */
  #takeGroup(): { batches: BatchMessage[]; after: ParseResult<ServerMessage>[] } {
    const batches: BatchMessage[] = [];
    const after: ParseResult<ServerMessage>[] = [];
    let size = 0;
    while (size < MAX_CHANGES_PER_TRANSACTION) {
      const head = this.#frames[0];
      if (!head?.ok) break;
      if (isBatchMessage(head.message)) {
        if (head.invalid.length > 0) this.#reportInvalid(head.message.type, head.invalid);
        batches.push(head.message);
        size += batchChanges(head.message).length;
      } else if (batches.length > 0 && isAnswer(head.message)) {
        after.push(head);
      } else {
        break;
      }
      this.#frames.shift();
    }
    return { batches, after };
  }

  async #applyBatches(session: Session, messages: BatchMessage[]): Promise<void> {
    if (!this.#state.syncing && messages.some((message) => message.type === 'sync_data')) this.#syncStarted();
    const batches = messages.map((message) => ({ changes: batchChanges(message), lsn: message.lsn }));
    const { results, failure } = this.#config?.applyOnPage
      ? await this.#applyOnPage(session, batches)
      : { results: await session.store.applyBatches(batches), failure: undefined };
    // Committed to a database that was lost since: the page was told it starts over.
    if (session !== this.#live) return;
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

  /**
   * Hands the batches that are not replays to the page, which commits them to its own database
   * one transaction each, then stores the resume point of the last one it committed. A batch the
   * page could not commit fails the group from there on, and its LSN is not stored.
   */
  async #applyOnPage(session: Session, batches: Batch[]): Promise<{ results: ApplyResult[]; failure: StorageError | undefined }> {
    const before = session.store.lastLSN;
    const fresh = freshBatches(batches, before);
    const results: ApplyResult[] = batches.map(() => ({ applied: false, lastLSN: before }));
    if (fresh.length === 0) return { results, failure: undefined };
    const applyId = `${this.#applyPrefix}/${++this.#applyCount}`;
    const answered = new Promise<PageApplied>((resolve) => this.#applies.set(applyId, resolve));
    this.#post({
      type: 'apply',
      applyId,
      batches: fresh.map(({ index, lsn }) => {
        const changes = [...batches[index]!.changes];
        return lsn === undefined ? { changes } : { changes, lsn };
      }),
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const { count, error } = await Promise.race([
      answered,
      new Promise<Pick<PageApplied, 'count' | 'error'>>((resolve) => {
        timer = setTimeout(() => {
          // A late answer then matches nothing; the batches come again after the reconnect.
          this.#applies.delete(applyId);
          resolve({ count: 0, error: `the page's Database did not finish within ${APPLY_TIMEOUT / 1000} s` });
        }, APPLY_TIMEOUT);
      }),
    ]);
    clearTimeout(timer);
    const committed = fresh.slice(0, Math.min(count, fresh.length));
    let last = before;
    for (const { index, lsn } of committed) {
      if (lsn !== undefined) last = lsn;
      results[index] = { applied: true, lastLSN: last, unstorable: [] };
    }
    if (last !== before) await session.store.saveLSN(last);
    const failed = fresh[committed.length];
    if (failed === undefined) return { results, failure: undefined };
    const at = batches[failed.index]!.lsn;
    return {
      results,
      failure: new StorageError(
        `The page's database did not apply the batch${at === undefined ? '' : ` at ${at}`}: ${error ?? 'no reason given'}`,
      ),
    };
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

/** The page's answer to an `apply` event. */
type PageApplied = Extract<PageToWorker, { type: 'applied' }>;

/** Everything the engine posts itself; `status` goes through {@link StatusPosts}. */
type NonStatusMessage = Exclude<WorkerToPage, { type: 'status' }>;

/** How long the page's Database may take over one `apply` before the batches count as failed. */
const APPLY_TIMEOUT = 60_000;

/** Batch frames queued together are written in one transaction, up to about this many changes. */
const MAX_CHANGES_PER_TRANSACTION = 5_000;

/** Frames that answer the client and depend on nothing stored after them. */
function isAnswer(message: ServerMessage): boolean {
  return message.type === 'operation_complete' || message.type === 'operation_error' || message.type === 'pong';
}
