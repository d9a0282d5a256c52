import { DEFAULT_DB_NAME, type StoredEntity } from '../db/schema.ts';
import { OperationRejectedError, StorageError, SyncError } from '../protocol/errors.ts';
import type { OperationInput, OperationResult, QueuedOperation, SyncState } from '../protocol/state.ts';
import { ClientState } from './client-state.ts';
import { isDatabase, type Database } from './database.ts';
import type { LockManagerLike } from './leader-election.ts';
import { getNetworkStatus, type NetworkStatus } from './network.ts';
import { DEFAULT_MAX_OPERATION_BYTES, toQueuedOperation } from './operation-input.ts';
import { OutboxWriter } from './outbox-writer.ts';
import { listenToPage } from './page-signals.ts';
import { PageStore } from './page-store.ts';
import { PendingOperations } from './pending-operations.ts';
import type { SyncEventDetails, SyncEventType } from './service-events.ts';
import { DEFAULT_SYNC_URL, workerConfig, type SyncServiceOptions } from './service-options.ts';
import { isWorkerError, SharedConnection, type ConnectionEvent } from './shared-connection.ts';
import { resolveSyncUrl } from './url.ts';
import { createSyncWorker } from './worker-endpoint.ts';

export { DEFAULT_SYNC_URL, type SyncServiceOptions };

/** An operation stored in the outbox, and the promise of the server's answer to it. */
export interface StoredOperation {
  id: string;
  acknowledged: Promise<OperationResult>;
}

/**
 * The sync client without a DOM element: a facade over the connection its tabs share (which tab
 * leads and runs the worker), the pending operations, the page's signals and the local store.
 * Every tab writes operations into the shared durable outbox and settles their promises when the
 * server answers. Nothing happens until a method is called.
 */
export class WorkerSyncService {
  #options: SyncServiceOptions;
  readonly #state = new ClientState();
  readonly #pending = new PendingOperations();
  readonly #outbox = new OutboxWriter(() => this.#store.open());
  #ready: Promise<void> | undefined;
  /** Once started: where the connection is. */
  #connection: SharedConnection | undefined;
  #store: PageStore;
  /** Every listener this client adds to the page. */
  #abort: AbortController | undefined;
  #wantConnected = false;
  /** `disconnect()` was called: queueing an operation does not dial again. */
  #userDisconnected = false;
  #closed = false;

  constructor(options: SyncServiceOptions = {}) {
    this.#options = { ...options };
    this.#store = new PageStore(() => this.dbName, (detail) => this.#state.emit('error', detail));
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
   */
  async queueOperation(input: OperationInput): Promise<OperationResult> {
    return (await this.storeOperation(input)).acknowledged;
  }

  /**
   * Like {@link queueOperation}, in two steps: resolves once the operation is stored durably
   * (it will be sent even if the page closes now), with its id and the promise of the answer.
   */
  async storeOperation(input: OperationInput): Promise<StoredOperation> {
    const operation = toQueuedOperation(input, this.#options.maxOperationBytes ?? DEFAULT_MAX_OPERATION_BYTES);
    const acknowledged = this.#pending.reserve(operation.id);
    await this.#pending.store(operation.id, async () => {
      await this.initialize();
      await this.#handOff(operation);
    });
    // As the older `SyncClient` did: queueing starts a connection when none is under way, unless
    // the page closed it on purpose or the server refused us for good.
    if (this.#state.snapshot.status === 'disconnected' && !this.#userDisconnected) {
      this.connect().catch((error: unknown) => this.#reportFailure(error));
    }
    return { id: operation.id, acknowledged };
  }

  /**
   * Resolves once every operation queued on this client so far has been answered: acknowledged,
   * refused, or cleared. Operations queued after the call are not waited for.
   */
  operationsSettled(): Promise<void> {
    return this.#pending.settled();
  }

  /** Stores the operation, then tells whoever sends it; from then on its answer settles it. */
  async #handOff(operation: QueuedOperation): Promise<void> {
    await this.#outbox.write(operation);
    this.#pending.stored(operation.id);
    const connection = this.#connection!;
    await connection.send(operation);
    if (!connection.leading) await this.#countPending();
  }

  /**
   * Drops every unacknowledged operation; the promise of each rejects with "Operation cancelled
   * due to client cleanup". Operations being queued right now are stored first, then dropped
   * too. Resolves with how many were dropped.
   */
  async clearOperationQueue(): Promise<number> {
    await this.initialize();
    const removed = await this.#clear();
    if (!this.#connection!.leading) await this.#countPending();
    return removed.length;
  }

  /**
   * Clears the outbox where it is sent from, once the operations being stored here are in it,
   * and rejects the removed operations' promises (in every tab). Resolves with the removed ids.
   */
  async #clear(): Promise<string[]> {
    await this.#pending.whenStored();
    const removed = await this.#connection!.clearOutbox();
    this.#pending.cancel(removed);
    return removed;
  }

  /** A follower counts the shared outbox itself; the leader's state corrects it. */
  async #countPending(): Promise<void> {
    try {
      const pending = await (await this.#store.open()).countOperations();
      if (!this.#connection?.leading) this.#state.update({ pendingOperations: pending });
    } catch {
      // The count is a hint; the operation itself is stored.
    }
  }

  /**
   * Hands the promises of unacknowledged operations over to `next`, a client on the same
   * database that will send them, instead of rejecting them at `cleanup`.
   */
  transferPendingTo(next: WorkerSyncService): void {
    if (next.dbName !== this.dbName) return;
    this.#pending.handOver(next.#pending);
  }

  /** One synced entity, or `undefined`. */
  async getEntity(entityType: string, entityId: string): Promise<StoredEntity | undefined> {
    this.#assertBuiltInStore();
    return (await this.#store.open()).entity(entityType, entityId);
  }

  /** Every synced entity of one type. */
  async getEntities(entityType: string): Promise<StoredEntity[]> {
    this.#assertBuiltInStore();
    return (await this.#store.open()).entities(entityType);
  }

  #assertBuiltInStore(): void {
    if (this.#options.database) {
      throw new SyncError('storage', 'This client writes the changes to your own Database: read the entities from it');
    }
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
    this.#connection?.close();
    this.#pending.close();
    this.#state.connectionGone();
    // An operation being stored finishes storing, and stays queued for the next client.
    await this.#pending.whenStored();
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
      locks: this.#locks(),
      database,
    }, {
      state: () => this.#state.snapshot,
      setState: (state) => this.#state.set(state),
      connectionGone: (failure, role) => this.#state.connectionGone(failure, role),
      event: (event) => this.#onEvent(event),
      failed: (error) => this.#fail(error),
      wantsConnection: () => this.#wantConnected,
      clearQueue: () => this.#clear(),
      cleared: (ids) => this.#pending.cancel(ids),
      clearStore: async () => (await this.#store.open()).clearOperations(),
    });
    this.#state.update({
      clientId: stored.clientId,
      ...(stored.lastLSN === undefined ? {} : { lastLSN: stored.lastLSN }),
      pendingOperations: stored.pending,
      role: 'follower',
    });
  }

  #locks(): LockManagerLike | undefined {
    if (this.#options.locks !== undefined) return this.#options.locks ?? undefined;
    return (globalThis.navigator as Navigator | undefined)?.locks as LockManagerLike | undefined;
  }

  #listenToPage(): void {
    if (this.#closed || this.#abort) return;
    this.#abort = new AbortController();
    listenToPage({
      network: (online) => {
        this.#connection?.network(online).catch((error: unknown) => this.#reportFailure(error));
      },
      // A frozen page runs nothing, its worker included: hand the connection to another tab
      // before the freeze, and take part again on resume.
      freeze: () => this.#connection?.leave(),
      resume: () => {
        if (this.#wantConnected) this.#join('connect').catch((error: unknown) => this.#reportFailure(error));
      },
    }, this.#abort.signal);
  }

  /** An event of the worker holding the connection (this tab's, or the leader's). */
  #onEvent(event: ConnectionEvent): void {
    if (event.type === 'operation_complete') {
      this.#pending.resolve(event.id, { id: event.id, ...(event.lsn === undefined ? {} : { lsn: event.lsn }) });
    } else if (event.type === 'operation_error') {
      this.#pending.reject(event.id, new OperationRejectedError(event.id, event.message));
    }
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
