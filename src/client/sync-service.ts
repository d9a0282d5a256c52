import { LocalStore, type StartState } from '../db/local-store.ts';
import { DEFAULT_DB_NAME, type StoredEntity } from '../db/schema.ts';
import {
  DEFAULT_CONNECTION_OPTIONS,
  INITIAL_STATE,
  type ConnectionOptions,
  type OperationInput,
  type OperationResult,
  type QueuedOperation,
  type SyncErrorDetail,
  type SyncRole,
  type SyncState,
} from '../protocol/state.ts';
import type { ChangeBatch, WorkerConfig, WorkerEvent } from '../protocol/worker-messages.ts';
import { errorMessage, OperationRejectedError, reviveError, serializeError, StorageError, SyncError } from '../protocol/errors.ts';
import { DEFAULT_MAX_OPERATION_BYTES, toQueuedOperation } from './operation-input.ts';
import { OutboxWriter } from './outbox-writer.ts';
import { SyncEventEmitter, type SyncEventDetails, type SyncEventType } from './service-events.ts';
import { clientLockName, LeaderElection, type LockManagerLike } from './leader-election.ts';
import { getNetworkStatus, type NetworkStatus } from './network.ts';
import { TabChannel, type TabCommand, type TabMessage } from './tab-channel.ts';
import { resolveSyncUrl } from './url.ts';
import { createSyncWorker, type WorkerEndpoint } from './worker-endpoint.ts';
import { applyToDatabase, isDatabase, type Database } from './database.ts';
import { carryLegacyState, defaultLegacyStorage } from './legacy-state.ts';
import { SyncWorkerManager } from './worker-manager.ts';

export interface SyncServiceOptions extends Partial<ConnectionOptions> {
  /** The sync endpoint: relative, http(s) or ws(s). Default `/api/sync`. */
  url?: string;
  /** Default: a random id created once and stored in the database. */
  clientId?: string;
  /** IndexedDB database; default `sync-connection`. */
  dbName?: string;
  /** Sent to the server in every `sync` frame. */
  token?: string;
  /** Largest operation accepted by `queueOperation`, in bytes of JSON. Default 1 MiB. */
  maxOperationBytes?: number;
  /** Base for a relative `url`; default the document's base URI. */
  baseURI?: string;
  /** Starts the worker; tests and custom builds replace it. */
  createWorker?: () => WorkerEndpoint;
  /** Delay before restarting a worker that died, doubling per failure; default 500 ms. */
  workerRestartDelay?: number;
  /** The Web Locks the tabs elect their leader with; default `navigator.locks` (none: every tab leads). */
  locks?: LockManagerLike | null;
  /**
   * The app's own store for the server's changes, instead of the built-in IndexedDB store. The
   * resume point moves only after the database commits a batch.
   */
  database?: Database;
  /**
   * On first start, carry the older `SyncClient`'s localStorage id (and, with a `database`, its
   * LSN) into a database that has none, then remove those keys. Set by the compat layer.
   */
  legacyState?: boolean;
}

/** The endpoint a client without a `url` connects to. */
export const DEFAULT_SYNC_URL = '/api/sync';

interface PendingOperation {
  resolve(result: OperationResult): void;
  reject(error: Error): void;
}

/** An operation stored in the outbox, and the promise of the server's answer to it. */
export interface StoredOperation {
  id: string;
  acknowledged: Promise<OperationResult>;
}

const CANCELLED = 'Operation cancelled due to client cleanup';

/** The rejection of an operation whose client went away before the server answered. */
function stillQueued(): SyncError {
  return new SyncError(
    'closed',
    'The sync client was cleaned up before the server acknowledged the operation; it stays queued and the next client on this database sends it (do not queue it again)',
  );
}
const MAX_WORKER_RESTART_DELAY = 30_000;
/** How long a follower waits for the leader to answer a command. */
const COMMAND_TIMEOUT = 5_000;

let warnedNoLocks = false;

/**
 * The sync client without a DOM element. The tabs of one client (one database and client id) that
 * want a connection elect a leader with a Web Lock; only the leader runs the worker and its
 * socket, and tells the others every event over a BroadcastChannel. Every tab writes operations
 * into the shared durable outbox and settles their promises when the server answers.
 * Nothing happens until a method is called.
 */
export class WorkerSyncService {
  #options: SyncServiceOptions;
  readonly #events = new SyncEventEmitter();
  readonly #pending = new Map<string, PendingOperation>();
  readonly #manager: SyncWorkerManager;
  readonly #outbox = new OutboxWriter(() => this.#local());
  #state: SyncState = INITIAL_STATE;
  #ready: Promise<void> | undefined;
  #store: Promise<LocalStore> | undefined;
  #abort: AbortController | undefined;
  #wantConnected = false;
  /** `disconnect()` was called: queueing an operation does not dial again. */
  #userDisconnected = false;
  /** queueOperation calls between storing an operation and handing it to the worker. */
  readonly #handoffs = new Set<Promise<void>>();
  /** Ids of operations being stored now (not yet in `#pending`). */
  readonly #storing = new Set<string>();
  /** One promise per operation queued and not yet answered; settles (never rejects) with it. */
  readonly #unanswered = new Set<Promise<void>>();
  #closed = false;
  #workerFailures = 0;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #config: WorkerConfig | undefined;
  #election: LeaderElection | undefined;
  #channel: TabChannel | undefined;
  /** Settles when the leader's worker is initialised (and connecting, when wanted). */
  #leaderReady: Promise<void> | undefined;
  readonly #asks = new Map<string, { resolve(value: unknown): void; reject(error: Error): void }>();
  /** Another tab of this client has spoken: a leader then copies its events to the channel. */
  #audience = false;

  constructor(options: SyncServiceOptions = {}) {
    this.#options = { ...options };
    this.#manager = new SyncWorkerManager(options.createWorker ?? createSyncWorker, {
      onEvent: (event) => {
        this.#onWorkerEvent(event);
        // Copying every event to a channel nobody listens to costs the page ~20% of a burst.
        if (event.type === 'status') this.#announce();
        else if (this.#audience && event.type !== 'apply') this.#channel?.post({ kind: 'event', event });
      },
      onWorkerError: (detail) => this.#onWorkerDied(detail),
    });
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
   * Changes options before the client starts (the seeds' `initializeSync(db, config)`); after
   * `initialize` it throws, as a running client cannot move to another server or database.
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
   * Starts the worker and loads the stored state. Safe to call more than once. With `db`, the
   * server's changes go into that database instead of the built-in store (see {@link Database}).
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
        // A later call starts afresh; a worker that died is reported by #onWorkerDied.
        if (this.#ready === ready) this.#ready = undefined;
        if (!(error instanceof SyncError && error.code === 'worker')) this.#fail(error);
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
    const role = await this.#election!.start();
    if (role === 'leader') {
      await this.#leaderReady;
      await this.#manager.request({ type: command });
    } else {
      this.#channel?.post({ kind: 'command', command });
    }
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
    if (this.#manager.running) {
      await this.#manager.request({ type: 'disconnect', graceful }).catch(() => undefined);
    }
    // A connect() while the socket closed wins: stay in the election.
    if (!this.#wantConnected) this.#election?.stop();
  }

  /** Asks the server to resend everything after the stored LSN. */
  async sendSyncMessage(): Promise<void> {
    await this.initialize();
    if (this.#manager.running) await this.#manager.request({ type: 'sync' });
    else await this.#ask('sync');
  }

  /** The latest state snapshot (immutable). */
  getState(): SyncState {
    return this.#state;
  }

  /** The state as the worker holding the connection has it now (this tab's, or the leader's). */
  async getStatus(): Promise<SyncState> {
    await this.#leaderReady?.catch(() => undefined);
    if (!this.#manager.running) return this.#state;
    const state = await this.#manager.request<SyncState>({ type: 'get_status' });
    return Object.freeze({ ...state, role: this.#state.role });
  }

  isConnected(): boolean {
    return this.#state.isConnected;
  }

  /** Calls `listener` with every new state; returns the function that unsubscribes it. */
  onStateChange(listener: (state: SyncState) => void): () => void {
    return this.#events.on('state_change', ({ state }) => listener(state));
  }

  /** Listens to one kind of event; returns the function that removes the listener. */
  on<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void {
    return this.#events.on(type, listener);
  }

  /** The seeds' name for {@link on}: the listener gets the event's detail; returns its remover. */
  addEventListener<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void {
    return this.#events.on(type, listener);
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
    // Checked and reserved before anything waits, so that the same id queued twice at once
    // is refused instead of taking the first one's place.
    if (this.#pending.has(operation.id) || this.#storing.has(operation.id)) {
      throw new SyncError('operation', `An operation with id ${JSON.stringify(operation.id)} is already queued`);
    }
    let settle!: PendingOperation;
    const settled = new Promise<OperationResult>((resolve, reject) => { settle = { resolve, reject }; });
    const answered = settled.then(() => undefined, () => undefined);
    this.#unanswered.add(answered);
    void answered.then(() => this.#unanswered.delete(answered));
    this.#storing.add(operation.id);
    try {
      await this.initialize();
      const handoff = this.#handOff(operation, settle);
      this.#handoffs.add(handoff);
      try {
        await handoff;
      } finally {
        this.#handoffs.delete(handoff);
      }
    } catch (error) {
      settle.reject(error instanceof Error ? error : new Error(String(error)));
      throw error;
    } finally {
      this.#storing.delete(operation.id);
    }
    // The seeds' promise: queueing starts a connection when none is under way, unless the page
    // closed it on purpose or the server refused us for good.
    if (this.#state.status === 'disconnected' && !this.#userDisconnected) {
      this.connect().catch((error: unknown) => this.#reportFailure(error));
    }
    return { id: operation.id, acknowledged: settled };
  }

  /**
   * Resolves once every operation queued on this client so far has been answered: acknowledged,
   * refused, or cleared. Operations queued after the call are not waited for.
   */
  async operationsSettled(): Promise<void> {
    await Promise.all([...this.#unanswered]);
  }

  /** Stores the operation, then tells the worker; from then on `settle` answers for it. */
  async #handOff(operation: QueuedOperation, settle: PendingOperation): Promise<void> {
    await this.#outbox.write(operation);
    if (this.#closed) throw stillQueued();
    this.#pending.set(operation.id, settle);
    if (!this.#manager.running) {
      // The leader's worker sends it; if there is none yet, whoever leads next loads it.
      this.#channel?.post({ kind: 'operation', operation });
      await this.#countPending();
      return;
    }
    await this.#manager.request({ type: 'operation', operation }).catch(() => {
      // The record is in the outbox: a restarted worker loads and sends it, so keep waiting.
    });
  }

  /**
   * Drops every unacknowledged operation; the promise of each rejects with "Operation cancelled
   * due to client cleanup". Operations being queued right now are stored first, then dropped
   * too. Resolves with how many were dropped.
   */
  async clearOperationQueue(): Promise<number> {
    await this.initialize();
    const removed = await this.#clear();
    if (!this.#manager.running) await this.#countPending();
    return removed.length;
  }

  /**
   * Clears the outbox where it is sent from (this tab's worker, the leader's, or the store when
   * nobody leads) once the operations being stored here are in it, and rejects the removed
   * operations' promises in every tab. Resolves with the removed ids.
   */
  async #clear(): Promise<string[]> {
    await Promise.allSettled([...this.#handoffs]);
    const removed = this.#manager.running
      ? await this.#manager.request<string[]>({ type: 'clear_operations' })
      : await this.#clearWhereSent();
    this.#cancel(removed);
    this.#channel?.post({ kind: 'cleared', ids: removed });
    return removed;
  }

  /**
   * A tab without a worker: if nobody leads, clear the store while holding the lock, so that no
   * tab can start leading (and load the outbox) in the middle; otherwise ask the leader.
   */
  async #clearWhereSent(): Promise<string[]> {
    const locks = this.#locks();
    if (!locks || !this.#config) return this.#clearStore();
    let cleared: string[] | undefined;
    await locks.request(lockName(this.#config), { mode: 'exclusive', ifAvailable: true }, async (lock) => {
      if (lock) cleared = await this.#clearStore();
    });
    return cleared ?? (this.#ask('clear_operations') as Promise<string[]>);
  }

  /** Clears the outbox directly; only while no worker sends from it. */
  async #clearStore(): Promise<string[]> {
    return (await this.#local()).clearOperations();
  }

  /** A tab without a worker counts the shared outbox itself; the leader's state corrects it. */
  async #countPending(): Promise<void> {
    try {
      const pending = await (await this.#local()).countOperations();
      if (!this.#manager.running) this.#setState({ ...this.#state, pendingOperations: pending });
    } catch {
      // The count is a hint; the operation itself is stored.
    }
  }

  #cancel(ids: readonly string[]): void {
    for (const id of ids) {
      this.#pending.get(id)?.reject(new SyncError('operation', CANCELLED));
      this.#pending.delete(id);
    }
  }

  /** Sends a command to the leader and waits for its answer. */
  #ask(command: TabCommand): Promise<unknown> {
    const channel = this.#channel;
    if (!channel) return Promise.reject(new SyncError('closed', 'Not connected: no tab holds the connection'));
    const id = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#asks.delete(id);
        reject(new SyncError('closed', `No tab holding the connection answered "${command}"`));
      }, COMMAND_TIMEOUT);
      this.#asks.set(id, {
        resolve: (value) => { clearTimeout(timer); resolve(value); },
        reject: (error) => { clearTimeout(timer); reject(error); },
      });
      channel.post({ kind: 'command', id, command });
    });
  }

  /**
   * Hands the promises of unacknowledged operations over to `next`, a client on the same
   * database that will send them, instead of rejecting them at `cleanup`.
   */
  transferPendingTo(next: WorkerSyncService): void {
    if (next.dbName !== this.dbName) return;
    for (const [id, settle] of this.#pending) next.#pending.set(id, settle);
    this.#pending.clear();
  }

  /** One synced entity, or `undefined`. */
  async getEntity(entityType: string, entityId: string): Promise<StoredEntity | undefined> {
    this.#assertBuiltInStore();
    return (await this.#local()).entity(entityType, entityId);
  }

  /** Every synced entity of one type. */
  async getEntities(entityType: string): Promise<StoredEntity[]> {
    this.#assertBuiltInStore();
    return (await this.#local()).entities(entityType);
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
    clearTimeout(this.#restartTimer);
    this.#abort?.abort();
    this.#election?.stop();
    this.#channel?.close();
    this.#channel = undefined;
    for (const ask of this.#asks.values()) ask.reject(new SyncError('closed', 'The sync client was cleaned up'));
    this.#asks.clear();
    this.#manager.terminate('The sync client was cleaned up');
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(stillQueued());
    const store = this.#store;
    this.#store = undefined;
    if (store) (await store.catch(() => undefined))?.close();
    this.#setState({ ...this.#state, status: 'disconnected', isConnected: false, isConnecting: false, syncing: false, progress: null });
    this.#events.clear();
  }

  async #start(): Promise<void> {
    // Everything this reports happens after the call returns, never inside it.
    await Promise.resolve();
    const url = resolveSyncUrl(this.#options.url ?? DEFAULT_SYNC_URL, this.#options.baseURI ?? globalThis.document?.baseURI ?? '');
    if (this.#closed) throw new SyncError('worker', 'This sync client was cleaned up');
    this.#listenToNetwork();
    const local = await this.#local();
    const { database } = this.#options;
    if (database !== undefined && !isDatabase(database)) {
      throw new SyncError('storage', 'The database must have a transaction(work) method that runs work(tx) in one transaction (see Database)');
    }
    let stored: StartState;
    try {
      if (this.#options.legacyState) await carryLegacyState(local, defaultLegacyStorage(), database !== undefined);
      stored = await local.startState(this.#options.clientId ?? '');
    } catch (cause) {
      throw new SyncError('storage', `Could not read the stored state: ${errorMessage(cause)}`, { cause });
    }
    // Cleaned up while reading: start no election and open no channel that nobody would close.
    if (this.#closed) throw new SyncError('worker', 'This sync client was cleaned up');
    const config: WorkerConfig = {
      ...DEFAULT_CONNECTION_OPTIONS,
      ...pickConnectionOptions(this.#options),
      url,
      clientId: stored.clientId,
      dbName: this.dbName,
      ...(this.#options.token === undefined ? {} : { token: this.#options.token }),
      ...(this.#options.database ? { applyOnPage: true } : {}),
    };
    this.#config = config;
    const locks = this.#locks();
    this.#election = new LeaderElection(lockName(config), (role) => this.#onRole(role), locks);
    if (locks) {
      this.#channel = new TabChannel(lockName(config), (message) => this.#onTabMessage(message));
      this.#channel.post({ kind: 'hello' });
    } else if (!warnedNoLocks) {
      warnedNoLocks = true;
      console.warn('sync-connection: this browser has no Web Locks, so every tab opens its own connection');
    }
    this.#setState({
      ...this.#state,
      clientId: stored.clientId,
      lastLSN: stored.lastLSN ?? this.#state.lastLSN,
      pendingOperations: stored.pending,
      role: 'follower',
    });
  }

  #locks(): LockManagerLike | undefined {
    if (this.#options.locks !== undefined) return this.#options.locks ?? undefined;
    return (globalThis.navigator as Navigator | undefined)?.locks as LockManagerLike | undefined;
  }

  /** The election decided: a leader starts the worker, a tab that stops leading stops it. */
  #onRole(role: SyncRole): void {
    if (role === 'leader' && this.#closed) {
      this.#election?.stop();
      return;
    }
    if (role === 'leader') {
      this.#channel?.post({ kind: 'leading' });
      this.#startLeading();
      return;
    }
    this.#leaderReady = undefined;
    clearTimeout(this.#restartTimer);
    this.#manager.terminate('This tab no longer holds the connection');
    this.#setState({
      ...this.#state, role: 'follower', status: 'disconnected', isConnected: false, isConnecting: false,
      syncing: false, progress: null,
    });
    // Whoever mirrored this tab sees it stop, until the next leader speaks.
    this.#announce();
    this.#channel?.post({ kind: 'hello' });
  }

  /** Tells the other tabs this tab's state, when another tab has spoken (see #audience). */
  #announce(): void {
    if (this.#audience) this.#postState();
  }

  #postState(): void {
    this.#channel?.post({ kind: 'event', event: { type: 'status', state: this.#state } });
  }

  /** Runs the leader's worker; a failure other than a dead worker (reported apart) is this tab's error. */
  #startLeading(): void {
    this.#leaderReady = this.#startWorker();
    this.#leaderReady.catch((error: unknown) => {
      if (!(error instanceof SyncError && error.code === 'worker')) this.#fail(error);
    });
  }

  /** Starts and initialises the leader's worker; it connects when this tab wants a connection. */
  async #startWorker(): Promise<void> {
    this.#manager.start();
    const state = await this.#manager.request<SyncState>({ type: 'init', config: this.#config! });
    this.#setState({ ...state, role: 'leader' });
    this.#postState();
    const online = globalThis.navigator?.onLine ?? true;
    if (!online) await this.#manager.request({ type: 'network', online });
    if (this.#wantConnected) await this.#manager.request({ type: 'connect' });
  }

  /** What the other tabs of this client say. */
  #onTabMessage(message: TabMessage): void {
    const leading = this.#manager.running;
    // Every tab says hello when it starts, so whoever leads, now or later, knows it has listeners.
    if (message.kind === 'hello' || message.kind === 'operation' || message.kind === 'command') this.#audience = true;
    if (message.kind === 'leading') {
      if (!leading) this.#channel?.post({ kind: 'hello' });
      return;
    }
    switch (message.kind) {
      case 'event':
        if (leading) return;
        if (message.event.type === 'status') this.#setState({ ...message.event.state, role: 'follower' });
        else this.#onWorkerEvent(message.event);
        return;
      case 'hello':
        if (leading) this.#postState();
        return;
      case 'operation':
        if (leading) this.#manager.request({ type: 'operation', operation: message.operation }).catch(() => undefined);
        return;
      case 'command':
        if (leading) void this.#runCommand(message.command, message.id);
        return;
      case 'reply': {
        const ask = this.#asks.get(message.id);
        this.#asks.delete(message.id);
        if (message.ok) ask?.resolve(message.value);
        else ask?.reject(reviveError(message.error));
        return;
      }
      case 'cleared':
        this.#cancel(message.ids);
        return;
      default: {
        const unhandled: never = message;
        void unhandled;
      }
    }
  }

  /** A follower's command, run by the leader; answered when the follower waits for it. */
  async #runCommand(command: TabCommand, id: string | undefined): Promise<void> {
    try {
      let value: unknown;
      if (command === 'clear_operations') {
        value = await this.#clear();
      } else {
        await this.#manager.request({ type: command });
      }
      if (id) this.#channel?.post({ kind: 'reply', id, ok: true, value });
    } catch (error) {
      if (id) this.#channel?.post({ kind: 'reply', id, ok: false, error: serializeError(error) });
    }
  }

  #listenToNetwork(): void {
    if (this.#closed || this.#abort || typeof globalThis.addEventListener !== 'function') return;
    this.#abort = new AbortController();
    const { signal } = this.#abort;
    const tell = (online: boolean) => {
      if (!this.#manager.running) return;
      this.#manager.request({ type: 'network', online }).catch((error: unknown) => this.#reportFailure(error));
    };
    globalThis.addEventListener('online', () => tell(true), { signal });
    globalThis.addEventListener('offline', () => tell(false), { signal });
    // A frozen page runs nothing, its worker included: hand the connection to another tab
    // before the freeze, and take part again on resume.
    globalThis.document?.addEventListener('freeze', () => this.#election?.stop(), { signal });
    globalThis.document?.addEventListener('resume', () => {
      if (this.#wantConnected) this.#join('connect').catch((error: unknown) => this.#reportFailure(error));
    }, { signal });
  }

  #local(): Promise<LocalStore> {
    if (this.#closed) return Promise.reject(new SyncError('storage', 'This sync client was cleaned up'));
    this.#store ??= LocalStore.open(this.dbName, {
      onBlocked: () => this.#events.emit('error', {
        code: 'storage',
        message: `The database "${this.dbName}" is held open at an older version by another connection; waiting for it to close`,
      }),
      onBlocking: () => { this.#store = undefined; },
      onTerminated: () => { this.#store = undefined; },
    }).catch((cause: unknown) => {
      this.#store = undefined;
      throw new SyncError('storage', `Could not open the database "${this.dbName}": ${errorMessage(cause)}`, { cause });
    });
    return this.#store;
  }

  #onWorkerEvent(event: WorkerEvent): void {
    switch (event.type) {
      case 'status':
        this.#setState({ ...event.state, role: this.#election?.role ?? event.state.role });
        return;
      case 'operation_complete': {
        const { type: _, ...detail } = event;
        this.#pending.get(event.id)?.resolve(detail);
        this.#pending.delete(event.id);
        this.#events.emit('operation_complete', detail);
        return;
      }
      case 'operation_error': {
        const { type: _, ...detail } = event;
        this.#pending.get(event.id)?.reject(new OperationRejectedError(event.id, event.message));
        this.#pending.delete(event.id);
        this.#events.emit('operation_error', detail);
        return;
      }
      case 'apply':
        void this.#applyOnPage(event.applyId, event.batches);
        return;
      case 'connected':
        this.#workerFailures = 0;
        this.#events.emit(event.type, { clientId: event.clientId, lastLSN: event.lastLSN });
        return;
      case 'disconnected':
      case 'reconnecting':
      case 'sync_started':
      case 'sync_progress':
      case 'sync_completed':
      case 'changes':
      case 'message':
      case 'error': {
        const { type, ...detail } = event;
        this.#events.emit(type, detail as never);
        return;
      }
      default: {
        const unhandled: never = event;
        void unhandled;
      }
    }
  }

  /** Commits the worker's batches to the app's Database, then tells the worker how far it got. */
  async #applyOnPage(applyId: string, batches: ChangeBatch[]): Promise<void> {
    const { database } = this.#options;
    const answer = database
      ? await applyToDatabase(database, batches)
      : { count: 0, error: 'this tab has no Database to apply the changes to' };
    await this.#manager.request({ type: 'applied', applyId, ...answer }).catch(() => {
      // The worker is gone; the next one resumes from the stored LSN and sends these again.
    });
  }

  #onWorkerDied(detail: SyncErrorDetail): void {
    this.#setState({ ...this.#state, status: 'error', isConnected: false, isConnecting: false, syncing: false, progress: null, lastError: detail });
    this.#announce();
    this.#events.emit('error', detail);
    if (this.#closed) return;
    const base = this.#options.workerRestartDelay ?? 500;
    const delay = Math.min(MAX_WORKER_RESTART_DELAY, base * 2 ** this.#workerFailures);
    this.#workerFailures += 1;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      if (this.#closed || this.#election?.role !== 'leader') return;
      this.#startLeading();
    }, delay);
  }

  /** Initialisation failed for a reason other than a dead worker: the state and an event say so. */
  #fail(error: unknown): void {
    if (this.#closed) return;
    const detail = toDetail(error, error instanceof StorageError ? 'storage' : 'worker');
    this.#setState({ ...this.#state, status: 'error', isConnected: false, isConnecting: false, lastError: detail });
    this.#events.emit('error', detail);
  }

  #reportFailure(error: unknown): void {
    if (this.#closed) return;
    // A dead worker is already reported by #onWorkerDied.
    if (error instanceof SyncError && error.code === 'worker') return;
    this.#events.emit('error', toDetail(error, 'worker'));
  }

  #setState(state: SyncState): void {
    if (state === this.#state) return;
    this.#state = Object.isFrozen(state) ? state : Object.freeze({ ...state });
    this.#events.emit('state_change', { state: this.#state });
  }
}

/** The Web Lock and BroadcastChannel name of one client: its database and client id. */
function lockName(config: WorkerConfig): string {
  return clientLockName(config.dbName, config.clientId);
}

function pickConnectionOptions(options: Partial<ConnectionOptions>): Partial<ConnectionOptions> {
  const picked: Partial<ConnectionOptions> = {};
  for (const key of ['heartbeatInterval', 'backoffInitial', 'backoffMax'] as const) {
    const value = options[key];
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) picked[key] = value;
  }
  return picked;
}


function toDetail(error: unknown, fallback: SyncErrorDetail['code']): SyncErrorDetail {
  if (error instanceof SyncError) return { code: error.code, message: error.message, cause: error.cause };
  return { code: fallback, message: errorMessage(error), cause: error };
}
