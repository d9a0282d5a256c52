import { DEFAULT_DB_NAME } from '../db/schema.ts';
import { StorageError, SyncError } from '../protocol/errors.ts';
import type { OperationInput, OperationResult, SyncState } from '../protocol/state.ts';
import { ClientState } from './client-state.ts';
import { isDatabase, type Database } from './database.ts';
import { getNetworkStatus, type NetworkStatus } from './network.ts';
import { DEFAULT_MAX_OPERATION_BYTES } from './operation-input.ts';
import type { ObserveListener, ObserveOptions } from './live-query.ts';
import { LocalView } from './local-view.ts';
import { listenToPage } from './page-signals.ts';
import type { SyncEntity } from './pending-layer.ts';
import { PageStore } from './page-store.ts';
import type { SyncEventDetails, SyncEventType } from './service-events.ts';
import { DEFAULT_SYNC_URL, locksOf, workerConfig, type SyncServiceOptions } from './service-options.ts';
import { isWorkerError, SharedConnection, type ConnectionEvent } from './shared-connection.ts';
import { resolveSyncUrl } from './url.ts';
import { createSyncWorker } from './worker-endpoint.ts';
import { Writes, type StoredOperation } from './writes.ts';

export { DEFAULT_SYNC_URL, type StoredOperation, type SyncServiceOptions };


/**
 * The sync client without a DOM element: a facade over the connection its tabs share (which tab
 * leads and runs the worker), the pending operations, the page's signals and the local store.
 * Every tab writes operations into the shared durable outbox and settles their promises when the
 * server answers. Nothing happens until a method is called.
 */
export class WorkerSyncService {
  #options: SyncServiceOptions;
  readonly #state = new ClientState();
  #ready: Promise<void> | undefined;
  /** Once started: where the connection is. */
  #connection: SharedConnection | undefined;
  #store: PageStore;
  /** What reads show: the local store with the pending operations on top. */
  readonly #view: LocalView;
  readonly #writes: Writes;
  /** Every listener this client adds to the page. */
  #abort: AbortController | undefined;
  #wantConnected = false;
  /** `disconnect()` was called: queueing an operation does not dial again. */
  #userDisconnected = false;
  #closed = false;

  constructor(options: SyncServiceOptions = {}) {
    this.#options = { ...options };
    this.#store = new PageStore(() => this.dbName, (detail) => this.#state.emit('error', detail));
    this.#view = new LocalView({
      store: () => this.#store.open(),
      start: () => this.initialize(),
      ownDatabase: () => this.#options.database !== undefined,
      report: (error, code) => this.#state.report(error, code),
    });
    this.#writes = new Writes(this.#store, this.#view, {
      start: () => this.initialize(),
      connection: () => this.#connection!,
      pendingCounted: (count) => this.#state.update({ pendingOperations: count }),
    }, options.maxOperationBytes ?? DEFAULT_MAX_OPERATION_BYTES);
  }

  /** The database this client reads and writes. */
  get dbName(): string {
    return this.#options.dbName || DEFAULT_DB_NAME;
  }

  /** The app's own store for the server's changes, when one was given. */
  get database(): Database | undefined {
    return this.#options.database;
  }

  /** True once `initialize` (or a method that calls it) has run: the options are fixed. */
  get started(): boolean {
    return this.#ready !== undefined || this.#closed;
  }

  /** True after `cleanup`: the client cannot be used again. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Changes options before the client starts (the older `SyncClient`'s `initializeSync(db, config)`);
   * after `initialize` it throws, as a running client cannot move to another server or database.
   */
  configure(options: SyncServiceOptions): void {
    const current = this.#options;
    const unchanged = (Object.keys(options) as (keyof SyncServiceOptions)[]).every((key) => options[key] === current[key]);
    // The same options again (a framework's effect run twice) change nothing, started or not.
    if (unchanged) return;
    if (this.#ready || this.#closed) {
      throw new SyncError('worker', 'configure() must be called before the client starts (initialize, connect or queueOperation)');
    }
    if (options.database !== undefined && !isDatabase(options.database)) {
      throw new TypeError('database must have a transaction(work) method');
    }
    this.#options = { ...this.#options, ...options };
  }

  /**
   * Loads the stored state and joins the tabs of this client. Safe to call more than once. With
   * `db`, the server's changes go into that database instead of the built-in store (see {@link Database}).
   */
  initialize(db?: Database): Promise<void> {
    if (this.#closed) return Promise.reject(new SyncError('worker', 'This sync client was cleaned up and cannot start again; create a new one'));
    if (db !== undefined && db !== this.#options.database) {
      if (this.#ready) {
        return Promise.reject(new SyncError('storage', 'This client already started with another database (or the built-in store); give it the database before it starts'));
      }
      try {
        this.configure({ database: db });
      } catch (error) {
        return Promise.reject(error);
      }
    }
    if (!this.#ready) {
      const ready: Promise<void> = this.#start().catch((error: unknown) => {
        // A later call starts afresh.
        if (this.#ready === ready) this.#ready = undefined;
        if (!isWorkerError(error)) this.#fail(error);
        throw error;
      });
      this.#ready = ready;
    }
    return this.#ready;
  }

  /**
   * Opens the connection (and keeps it open, reconnecting, until `disconnect`). With other tabs
   * of the same client, this tab takes part in the election: it either leads and connects, or
   * follows the leader's connection and takes over when the leader goes.
   */
  connect(): Promise<void> {
    return this.#join('connect');
  }

  /** Connects now, skipping a backoff delay under way. */
  forceConnect(): Promise<void> {
    return this.#join('force_connect');
  }

  async #join(command: 'connect' | 'force_connect'): Promise<void> {
    this.#wantConnected = true;
    this.#userDisconnected = false;
    await this.initialize();
    if (this.#closed) throw new SyncError('worker', 'This sync client was cleaned up');
    await this.#connection!.join(command);
  }

  /**
   * Closes this tab's connection and stops reconnecting. A leader hands the connection over to
   * another tab that wants one. `graceful` lets queued frames flush first.
   */
  async disconnect(graceful = true): Promise<void> {
    this.#wantConnected = false;
    this.#userDisconnected = true;
    if (!this.#ready) return;
    await this.#ready;
    await this.#connection?.disconnect(graceful);
    // A connect() while the socket closed wins: stay in the election.
    if (!this.#wantConnected) this.#connection?.leave();
  }

  /**
   * A new token for every later `sync` (an app renews its access token): the connection is not
   * restarted, and one the server had refused for its token connects again, when wanted.
   */
  async setToken(token: string | undefined): Promise<void> {
    this.#options = { ...this.#options, ...(token === undefined ? {} : { token }) };
    if (token === undefined) delete this.#options.token;
    if (!this.#ready) return;
    await this.#ready.catch(() => undefined);
    await this.#connection?.setToken(token);
  }

  /** Asks the server to resend everything after the stored LSN. */
  async sendSyncMessage(): Promise<void> {
    await this.initialize();
    await this.#connection!.sync();
  }

  /** The latest state snapshot (immutable). */
  getState(): SyncState {
    return this.#state.snapshot;
  }

  /** The state as the worker holding the connection has it now (this tab's, or the leader's). */
  getStatus(): Promise<SyncState> {
    return this.#connection?.status() ?? Promise.resolve(this.#state.snapshot);
  }

  isConnected(): boolean {
    return this.#state.snapshot.isConnected;
  }

  /** Calls `listener` with every new state; returns the function that unsubscribes it. */
  onStateChange(listener: (state: SyncState) => void): () => void {
    return this.#state.on('state_change', ({ state }) => listener(state));
  }

  /** Listens to one kind of event; returns the function that removes the listener. */
  on<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void {
    return this.#state.on(type, listener);
  }

  /** The older `SyncClient`'s name for {@link on}: the listener gets the event's detail; returns its remover. */
  addEventListener<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void {
    return this.#state.on(type, listener);
  }

  getNetworkStatus(): NetworkStatus {
    return getNetworkStatus();
  }

  /**
   * Stores the operation durably, then has the worker send it. Resolves when the server
   * acknowledges it; rejects on `operation_error`. Bad input rejects at once and stores nothing.
   * From the call on, every read in every tab shows its effects (see {@link observe}) until the
   * server's state covers it, or it is refused or cleared.
   */
  async queueOperation(input: OperationInput): Promise<OperationResult> {
    return (await this.storeOperation(input)).acknowledged;
  }

  /**
   * Like {@link queueOperation}, in two steps: resolves once the operation is stored durably
   * (it will be sent even if the page closes now), with its id and the promise of the answer.
   */
  async storeOperation(input: OperationInput): Promise<StoredOperation> {
    if (this.#closed) throw new SyncError('closed', 'This sync client was cleaned up');
    const stored = await this.#writes.store(input);
    // As the older `SyncClient` did: queueing starts a connection when none is under way, unless
    // the page closed it on purpose or the server refused us for good.
    if (this.#state.snapshot.status === 'disconnected' && !this.#userDisconnected) {
      this.connect().catch((error: unknown) => this.#reportFailure(error));
    }
    return stored;
  }

  /**
   * Resolves once every operation queued on this client so far has been answered: acknowledged,
   * refused, or cleared. Operations queued after the call are not waited for.
   */
  operationsSettled(): Promise<void> {
    return this.#writes.settled();
  }

  /**
   * Drops every unacknowledged operation; the promise of each rejects with "Operation cancelled
   * due to client cleanup". Operations being queued right now are stored first, then dropped
   * too. Resolves with how many were dropped.
   */
  async clearOperationQueue(): Promise<number> {
    await this.initialize();
    const removed = await this.#writes.clear();
    if (!this.#connection!.leading) await this.#writes.countPending();
    return removed.length;
  }

  /**
   * Hands the promises of unacknowledged operations over to `next`, a client on the same
   * database that will send them, instead of rejecting them at `cleanup`.
   */
  transferPendingTo(next: WorkerSyncService): void {
    if (next.dbName !== this.dbName) return;
    this.#writes.handOver(next.#writes);
  }

  /**
   * One entity as this client sees it: the server's value with every operation not yet settled
   * applied on top (`pending: true` while one the server has not acknowledged touches it), or
   * `undefined`.
   */
  getEntity(entityType: string, entityId: string): Promise<SyncEntity | undefined> {
    return this.#view.entity(entityType, entityId);
  }

  /** Every entity of one type as this client sees it (see {@link getEntity}), by entity id. */
  getEntities(entityType: string): Promise<SyncEntity[]> {
    return this.#view.entities(entityType);
  }

  /**
   * A live query over one entity type. `listener(rows, { added, updated, removed })` is called
   * once with the current result, then once per committed change that alters it: a server batch
   * (never half of one), a write, an acknowledgement, a rollback, a clear or a reset, in any tab.
   * `rows` is a new frozen array of the records {@link getEntity} returns; a row that did not
   * change is the same object as before. Returns the function that stops it; cleanup stops all.
   */
  observe(entityType: string, listener: ObserveListener, options?: ObserveOptions): () => void {
    return this.#view.observe(entityType, listener, options);
  }

  /** Live queries not yet stopped. */
  get observers(): number {
    return this.#view.observers;
  }

  /**
   * Stops the worker and every listener. Operations still unacknowledged stay in the outbox and
   * are sent by the next client on this database; their promises here reject.
   */
  async cleanup(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#wantConnected = false;
    this.#abort?.abort();
    const writesClosed = this.#writes.close();
    this.#view.close();
    // An operation being stored finishes storing and is told to the leader (the next client on
    // this database), before the connection to the other tabs goes.
    await writesClosed;
    this.#connection?.close();
    this.#state.connectionGone();
    await this.#store.close();
    this.#state.clear();
  }

  async #start(): Promise<void> {
    // Everything this reports happens after the call returns, never inside it.
    await Promise.resolve();
    const url = resolveSyncUrl(this.#options.url ?? DEFAULT_SYNC_URL, this.#options.baseURI ?? globalThis.document?.baseURI ?? '');
    if (this.#closed) throw new SyncError('worker', 'This sync client was cleaned up');
    this.#listenToPage();
    await this.#store.open();
    const { database } = this.#options;
    if (database !== undefined && !isDatabase(database)) {
      throw new SyncError('storage', 'The database must have a transaction(work) method that runs work(tx) in one transaction (see Database)');
    }
    const stored = await this.#store.startState(this.#options.clientId ?? '', { carry: this.#options.legacyState === true, lsn: database !== undefined });
    // Cleaned up while reading: start no election and open no channel that nobody would close.
    if (this.#closed) throw new SyncError('worker', 'This sync client was cleaned up');
    const config = workerConfig(this.#options, { url, clientId: stored.clientId, dbName: this.dbName });
    this.#connection = new SharedConnection(config, {
      createWorker: this.#options.createWorker ?? createSyncWorker,
      workerRestartDelay: this.#options.workerRestartDelay ?? 500,
      locks: locksOf(this.#options),
      database,
    }, {
      state: () => this.#state.snapshot,
      setState: (state) => this.#state.set(state),
      connectionGone: (failure, role) => this.#state.connectionGone(failure, role),
      event: (event) => this.#onEvent(event),
      failed: (error) => this.#fail(error),
      wantsConnection: () => this.#wantConnected,
      clearQueue: () => this.#writes.clear(),
      cleared: (ids) => this.#writes.cleared(ids),
      queuedElsewhere: (operations, stored) => this.#view.queuedElsewhere(operations, stored),
      droppedElsewhere: (operations) => { for (const operation of operations) void this.#view.unshow(operation); },
      workerStarted: (lastLSN) => this.#view.resumesAt(lastLSN),
      resendUnanswered: () => this.#writes.resendUnanswered(),
      clearStore: async () => (await this.#store.open()).clearOperations(),
    });
    this.#state.update({
      clientId: stored.clientId,
      ...(stored.lastLSN === undefined ? {} : { lastLSN: stored.lastLSN }),
      pendingOperations: stored.pending,
      role: 'follower',
    });
  }

  #listenToPage(): void {
    if (this.#closed || this.#abort) return;
    this.#abort = new AbortController();
    const reportFailure = (error: unknown) => this.#reportFailure(error);
    listenToPage({
      network: (online) => { this.#connection?.network(online).catch(reportFailure); },
      visibility: (visible) => { this.#connection?.pageSignal(visible ? 'visible' : 'hidden').catch(reportFailure); },
      focus: () => { this.#connection?.pageSignal('focus').catch(reportFailure); },
      // A frozen page runs nothing, its worker included: hand the connection to another tab
      // before the freeze, and take part again on resume.
      freeze: () => this.#connection?.leave(),
      resume: () => { if (this.#wantConnected) this.#join('connect').catch(reportFailure); },
    }, this.#abort.signal);
  }

  /** An event of the worker holding the connection (this tab's, or the leader's). */
  #onEvent(event: ConnectionEvent): void {
    if (event.type === 'operation_complete') this.#writes.acknowledged(event.id, event.lsn, event.settled === true);
    else if (event.type === 'operation_error') this.#writes.refused(event.id, event.message);
    else if (event.type === 'changes') this.#view.committed(event.changes, event.lsn, event.settled, event.segment);
    else if (event.type === 'folded') this.#view.folded(event.through);
    else if (event.type === 'sync_reset') this.#view.reset();
    else if (event.type === 'store_reopened') void this.#view.resync();
    this.#state.emitWorkerEvent(event);
  }

  /** Starting failed for a reason other than a dead worker: the state and an event say so. */
  #fail(error: unknown): void {
    if (this.#closed) return;
    this.#state.fail(error, error instanceof StorageError ? 'storage' : 'worker');
  }

  #reportFailure(error: unknown): void {
    // A dead worker is already reported, when it died.
    if (!this.#closed && !isWorkerError(error)) this.#state.report(error, 'worker');
  }
}
