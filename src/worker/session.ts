/**
 * The worker's database session: the local store, the change store, the outbox and the
 * connection over one open database. Opened at `init`; when the database is closed under it, the
 * session ends and a fresh one is opened in its place.
 */
import { LocalStore } from '../db/local-store.ts';
import { errorMessage, InvalidStateError, StorageError } from '../protocol/errors.ts';
import type { QueuedOperation } from '../protocol/state.ts';
import type { WorkerConfig } from '../protocol/worker-messages.ts';
import { ChangeStore } from './change-store.ts';
import { Connection, type ConnectionListener, type WebSocketConstructor } from './connection.ts';
import { DEFAULT_IN_FLIGHT_WINDOW, Outbox, type OutboxListener } from './outbox.ts';

export interface Session {
  readonly clientId: string;
  readonly local: LocalStore;
  readonly store: ChangeStore;
  readonly outbox: Outbox;
  readonly connection: Connection;
}

export interface SessionOptions {
  /** The global `WebSocket` in production; mock-socket's in tests. */
  WebSocket: WebSocketConstructor;
  /** Jitter source for the reconnection delay; default `Math.random`. */
  random?: () => number;
  /** The clock of the reconnection schedule, in milliseconds; default `performance.now`. */
  now?: () => number;
  /** Operations sent and not yet acknowledged, at most. */
  inFlightWindow?: number;
}

/** What the engine does at a session's turns. */
export interface SessionHost {
  /** The listeners of a new session's connection and outbox; `owner()` is the session once ready. */
  listeners(owner: () => Session | undefined): { connection: ConnectionListener; outbox: OutboxListener };
  /** A session is ready and live; called with no await before its first use. */
  opened(session: Session): void;
  /** The live session's database was closed under it; a new session is being opened. */
  lost(why: string): void;
  /** The database could not be opened again after a loss: the worker stays down. */
  reopenFailed(error: unknown): void;
  /** An operation whose record went with the lost database; it will never be answered. */
  operationLost(operation: QueuedOperation): void;
}

export class Sessions {
  readonly #options: SessionOptions;
  readonly #host: SessionHost;
  /** What `init` was given; a reopened database uses it again. */
  #config: WorkerConfig | undefined;
  /**
   * Settles when `init` has finished; set while it runs. Replaced by the reopening when the
   * database is lost, so requests that arrive meanwhile wait for the new session.
   */
  #session: Promise<Session> | undefined;
  /** The same session, once ready; undefined while a lost database is being reopened. */
  #live: Session | undefined;

  constructor(options: SessionOptions, host: SessionHost) {
    this.#options = options;
    this.#host = host;
  }

  get config(): WorkerConfig | undefined {
    return this.#config;
  }

  /** The token every later `sync` carries, this session's and any reopened one's. */
  setToken(token: string | undefined): void {
    const config = this.#config;
    if (!config) throw new InvalidStateError('The worker is not initialized: send init first');
    if (token === undefined) delete config.token;
    else config.token = token;
  }

  get live(): Session | undefined {
    return this.#live;
  }

  /** The session, once `init` (or a reopening) is done; rejects before `init`. */
  ready(): Promise<Session> {
    return this.#session ?? Promise.reject(new InvalidStateError('The worker is not initialized: send init first'));
  }

  /** False for a session that was lost: its late callbacks change nothing. True while opening. */
  current(session: Session | undefined): boolean {
    return session === undefined || session === this.#live;
  }

  async init(config: WorkerConfig): Promise<void> {
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
  }

  async #open(config: WorkerConfig): Promise<Session> {
    let session: Session | undefined;
    /** Why the database was closed under us before the session was ready, if it was. */
    let closedEarly: string | undefined;
    const lost = (why: string): void => {
      if (session) this.#lost(session, why);
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
      const listeners = this.#host.listeners(() => session);
      const connection = new Connection({
        url: config.url,
        heartbeatInterval: config.heartbeatInterval,
        backoffInitial: config.backoffInitial,
        backoffMax: config.backoffMax,
        WebSocket: this.#options.WebSocket,
        random: this.#options.random ?? Math.random,
        now: this.#options.now ?? (() => performance.now()),
        identity: () => ({
          clientId,
          lastLSN: store.lastLSN,
          ...(config.token === undefined ? {} : { token: config.token }),
        }),
        listener: listeners.connection,
      });
      const outbox = new Outbox(local, connection, listeners.outbox, this.#options.inFlightWindow ?? DEFAULT_IN_FLIGHT_WINDOW);
      await outbox.load();
      if (closedEarly !== undefined) {
        throw new StorageError(`The database ${JSON.stringify(config.dbName)} was closed while it was being opened: ${closedEarly}`);
      }
      session = { clientId, local, store, outbox, connection };
      this.#live = session;
      this.#host.opened(session);
      return session;
    } catch (error) {
      local.close();
      throw error;
    }
  }

  /**
   * The database was closed under the live session: another connection upgrades or deletes it
   * (an app's `indexedDB.deleteDatabase` on logout), or the browser closed it. Every later
   * transaction on it would fail, so the session ends: its connection stops, the host reports it,
   * and the database is opened again as a fresh session (a deleted one comes back empty: LSN 0/0,
   * a new client id unless configured), which connects if the old one was wanted.
   *
   * Reopening at once does not get in the way of the request that closed it: IndexedDB serves the
   * opens and deletes of one database in the order they were made, and the versionchange that
   * closed this one is sent while that request is already being served, so the new open waits
   * until the deletion or upgrade went through.
   */
  #lost(lost: Session, why: string): void {
    if (lost !== this.#live) return; // already handled
    const wanted = lost.connection.wanted;
    lost.connection.stop('database closed', wanted);
    this.#live = undefined;
    this.#host.lost(why);
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
      this.#host.reopenFailed(error);
      throw error;
    }
    // An operation whose record is gone with the database is never sent: its promise must not hang.
    for (const operation of lost.outbox.pending()) {
      if (!session.outbox.has(operation.id)) this.#host.operationLost(operation);
    }
    if (wanted) session.connection.connect();
    return session;
  }
}
