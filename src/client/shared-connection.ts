import { errorMessage, SyncError } from '../protocol/errors.ts';
import type { QueuedOperation, SyncErrorDetail, SyncRole, SyncState } from '../protocol/state.ts';
import { parseIds, tabsName, type TabCommand, type TabEvent } from '../protocol/tab-messages.ts';
import type { ChangeBatch, WorkerConfig, WorkerEvent } from '../protocol/worker-messages.ts';
import { applyToDatabase, resetDatabase, type Database } from './database.ts';
import type { LockManagerLike } from './leader-election.ts';
import { pageVisible } from './page-signals.ts';
import { TabCoordinator } from './tab-coordinator.ts';
import type { WorkerEndpoint } from './worker-endpoint.ts';
import { SyncWorkerManager } from './worker-manager.ts';

/** An event of the worker holding the connection, other than its state and `apply`. */
export type ConnectionEvent = Exclude<TabEvent, { type: 'status' }>;

/** What the shared connection needs from the client it works for. */
export interface ConnectionHost {
  state(): SyncState;
  setState(state: SyncState): void;
  /** No worker speaks for this tab any more (see `WorkerSyncService`). */
  connectionGone(failure?: SyncErrorDetail, role?: SyncRole): void;
  /** An event of this tab's worker or of the leader's, other than `status` and `apply`. */
  event(event: ConnectionEvent): void;
  /** This tab's worker could not be initialised (other than by dying). */
  failed(error: unknown): void;
  /** The page wants a connection: a worker connects once initialised. */
  wantsConnection(): boolean;
  /** Clears the outbox for a follower that asked (the client's own clear). */
  clearQueue(): Promise<string[]>;
  /** Another tab removed these operations from the outbox. */
  cleared(ids: readonly string[]): void;
  /** Another tab is queueing these operations; `stored` once they are in the outbox. */
  queuedElsewhere(operations: readonly QueuedOperation[], stored: boolean): void;
  /** Another tab could not store these operations it had told of. */
  droppedElsewhere(operations: readonly QueuedOperation[]): void;
  /** This tab's worker is initialised (it leads now, or was restarted), at this resume point. */
  workerStarted(lastLSN: string): void;
  /**
   * This tab's worker, or the leader's, has loaded the outbox: operations this tab awaits whose
   * records are gone (their answers lost with a worker or a tab) are stored again.
   */
  resendUnanswered(): Promise<void>;
  /** Empties the outbox in the store, for a tab that holds the lock while nobody leads. */
  clearStore(): Promise<string[]>;
}

export interface SharedConnectionOptions {
  createWorker: () => WorkerEndpoint;
  workerRestartDelay: number;
  locks: LockManagerLike | undefined;
  /** The app's own store: this tab's page applies the changes its worker hands it. */
  database: Database | undefined;
}

/**
 * The connection the tabs of one client share: this tab's worker while this tab leads (restarted
 * when it dies), the leader's over the tabs' channel otherwise. Requests go where the connection
 * is; events come back from there, whichever it is.
 */
export class SharedConnection {
  readonly #config: WorkerConfig;
  readonly #database: Database | undefined;
  readonly #host: ConnectionHost;
  readonly #manager: SyncWorkerManager;
  readonly #tabs: TabCoordinator;
  /** Operations this tab stored in this task, for its worker. */
  #storedHere: QueuedOperation[] = [];
  #handedOver: Promise<void> | undefined;

  constructor(config: WorkerConfig, options: SharedConnectionOptions, host: ConnectionHost) {
    this.#config = config;
    this.#database = options.database;
    this.#host = host;
    this.#manager = new SyncWorkerManager(options.createWorker, {
      onEvent: (event) => {
        if (event.type === 'sync_reset' && this.#database) this.#resetDatabase(this.#database);
        this.#onEvent(event, this.#tabs.role);
        this.#tabs.relay(event);
      },
      // A new worker starts after a backoff.
      onWorkerError: (detail) => {
        host.connectionGone(detail);
        this.#tabs.announce();
        host.event({ type: 'error', ...detail });
      },
      prepare: () => this.#prepare(),
    }, { restartDelay: options.workerRestartDelay });
    this.#tabs = new TabCoordinator(tabsName(config.dbName, config.clientId), options.locks, {
      roleChanged: (role) => this.#roleChanged(role),
      leaderEvent: (event) => {
        // A visible follower keeps a hidden leader's retries on a visible page's schedule.
        if (event.type === 'reconnecting' && pageVisible()) this.#tabs.command('visible');
        this.#onEvent(event, 'follower');
      },
      operationsQueued: (operations) => host.queuedElsewhere(operations, false),
      operationsDropped: (operations) => host.droppedElsewhere(operations),
      operationsStored: (operations) => {
        host.queuedElsewhere(operations, true);
        if (!this.leading) return;
        for (const operation of operations) this.#manager.request({ type: 'operation', operation }).catch(() => undefined);
      },
      followerCommand: (command) => this.#run(command),
      cleared: (ids) => host.cleared(ids),
      // An answer the old worker or leader took out of the outbox may never have reached this tab.
      leaderStarted: () => { void host.resendUnanswered(); },
      state: () => host.state(),
    });
  }

  /** The one answer to "does this tab lead?": true from winning the election to leaving it. */
  get leading(): boolean {
    return this.#tabs.leading;
  }

  /**
   * Takes part in the election: a leader has its worker connect (or connect now), a follower asks
   * the leader to.
   */
  async join(command: 'connect' | 'force_connect'): Promise<void> {
    if (await this.#tabs.join() === 'leader') {
      await this.#manager.ready;
      await this.#manager.request({ type: command });
    } else {
      this.#tabs.command(command);
    }
  }

  /** Stops taking part; a leader hands the connection to the next tab in line. */
  leave(): void {
    this.#tabs.leave();
  }

  /** A leader closes its connection (and stays in the election); a follower does nothing. */
  async disconnect(graceful: boolean): Promise<void> {
    if (this.leading) await this.#manager.request({ type: 'disconnect', graceful }).catch(() => undefined);
  }

  /** Asks the server to resend everything after the stored LSN. */
  async sync(): Promise<void> {
    if (this.leading) await this.#manager.request({ type: 'sync' });
    else await this.#tabs.ask('sync');
  }

  /** The state as the worker holding the connection has it now (this tab's, or the leader's). */
  async status(): Promise<SyncState> {
    await this.#manager.ready?.catch(() => undefined);
    if (!this.leading) return this.#host.state();
    try {
      const state = await this.#manager.request<SyncState>({ type: 'get_status' });
      return Object.freeze({ ...state, role: this.#host.state().role });
    } catch {
      return this.#host.state(); // the worker is being restarted
    }
  }

  /** Shows an operation being queued here in the other tabs, before it is stored. */
  queued(operation: QueuedOperation): void {
    this.#tabs.queuedOperation(operation);
  }

  /** Tells the other tabs to stop showing operations this tab could not store. */
  dropped(operations: QueuedOperation[]): void {
    this.#tabs.droppedOperations(operations);
  }

  /** Has a stored operation sent: by this tab's worker, or by the leader's. */
  send(operation: QueuedOperation): Promise<void> {
    // The leader's worker sends it; if there is none yet, whoever leads next loads it.
    this.#tabs.storedOperation(operation);
    if (!this.leading) return Promise.resolve();
    // Those stored in one task go to the worker in one message.
    this.#storedHere.push(operation);
    this.#handedOver ??= Promise.resolve().then(() => {
      const operations = this.#storedHere;
      this.#storedHere = [];
      this.#handedOver = undefined;
      return this.#manager.request({ type: 'stored', operations }).then(() => undefined, () => {
        // The records are in the outbox: a restarted worker loads and sends them, so keep waiting.
      });
    });
    return this.#handedOver;
  }

  /**
   * Clears the outbox where it is sent from (this tab's worker, the leader's, or the store when
   * nobody leads), and tells the other tabs what was removed. Resolves with the removed ids.
   */
  async clearOutbox(): Promise<string[]> {
    let removed: string[];
    if (this.leading) {
      // A worker waiting for its restart is started now: only it may touch the outbox it loads.
      await this.#manager.whenReady();
      removed = await this.#manager.request<string[]>({ type: 'clear_operations' });
    } else {
      const cleared = await this.#tabs.whileNobodyLeads(() => this.#host.clearStore());
      removed = cleared ? cleared.value : parseIds(await this.#tabs.ask('clear_operations'));
    }
    this.#tabs.cleared(removed);
    return removed;
  }

  /**
   * A new token for every later `sync`: a leader's worker takes it (and connects again after the
   * server refused the old one, when a connection is wanted); a follower keeps it for when it leads.
   */
  async setToken(token: string | undefined): Promise<void> {
    if (token === undefined) delete this.#config.token;
    else this.#config.token = token;
    if (!this.leading) return;
    await this.#manager.request(token === undefined ? { type: 'token' } : { type: 'token', token });
    if (this.#host.wantsConnection()) await this.#manager.request({ type: 'connect' });
  }

  /** The browser went online or offline: a leader's worker follows. */
  network(online: boolean): Promise<void> {
    if (!this.leading) return Promise.resolve();
    return this.#manager.request({ type: 'network', online });
  }

  /** This page became visible or hidden, or got the focus: a leader's worker, or the leader, hears of it. */
  pageSignal(signal: 'visible' | 'hidden' | 'focus'): Promise<void> {
    if (this.leading) {
      return this.#manager.request(signal === 'focus' ? { type: 'wake', reason: signal } : { type: 'visibility', visible: signal === 'visible' });
    }
    if (signal !== 'hidden') this.#tabs.command(signal);
    return Promise.resolve();
  }

  /** Stops for good: a leader steps down (the others hear it) and its worker stops. */
  close(): void {
    this.#tabs.close();
    this.#manager.terminate('The sync client was cleaned up');
  }

  #roleChanged(role: SyncRole): void {
    if (role === 'leader') {
      this.#manager.start();
      return;
    }
    this.#manager.terminate('This tab no longer holds the connection');
    this.#host.connectionGone(undefined, 'follower');
  }

  /** Initialises each worker this tab starts; it connects when the page wants a connection. */
  async #prepare(): Promise<void> {
    try {
      const state = await this.#manager.request<SyncState>({ type: 'init', config: this.#config });
      this.#host.setState({ ...state, role: 'leader' });
      this.#host.workerStarted(state.lastLSN);
      await this.#host.resendUnanswered();
      this.#tabs.workerStarted();
      this.#tabs.tellState();
      const online = globalThis.navigator?.onLine ?? true;
      if (!online) await this.#manager.request({ type: 'network', online });
      if (!pageVisible()) await this.#manager.request({ type: 'visibility', visible: false });
      if (this.#host.wantsConnection()) await this.#manager.request({ type: 'connect' });
    } catch (error) {
      // A dead worker is reported apart, and restarted.
      if (!isWorkerError(error)) this.#host.failed(error);
      throw error;
    }
  }

  /** A follower's command, run by this leader. */
  async #run(command: TabCommand): Promise<unknown> {
    if (command === 'clear_operations') return this.#host.clearQueue();
    if (command === 'visible' || command === 'focus') return this.#manager.request({ type: 'wake', reason: command });
    await this.#manager.request({ type: command });
    return undefined;
  }

  #onEvent(event: WorkerEvent, role: SyncRole): void {
    if (event.type === 'status') this.#host.setState({ ...event.state, role });
    else if (event.type === 'apply') void this.#apply(event.applyId, event.batches);
    else this.#host.event(event);
  }

  /** The server's log starts over: the app's Database is emptied before the next batches. */
  #resetDatabase(database: Database): void {
    resetDatabase(database).catch((error: unknown) => {
      this.#host.event({ type: 'error', code: 'storage', message: `Your Database could not be emptied for the server's reset: ${errorMessage(error)}` });
    });
  }

  /** Commits the worker's batches to the app's Database, then tells the worker how far it got. */
  async #apply(applyId: string, batches: ChangeBatch[]): Promise<void> {
    const answer = this.#database
      ? await applyToDatabase(this.#database, batches)
      : { count: 0, error: 'this tab has no Database to apply the changes to' };
    await this.#manager.request({ type: 'applied', applyId, ...answer }).catch(() => {
      // The worker is gone; the next one resumes from the stored LSN and sends these again.
    });
  }
}

export function isWorkerError(error: unknown): boolean {
  return error instanceof SyncError && error.code === 'worker';
}
