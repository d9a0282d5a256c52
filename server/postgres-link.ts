import pg from 'pg';
import { describe, isConnectionError, isPoolBusy } from './postgres-errors.ts';
import { NAMES } from './postgres-schema.ts';

export interface LinkOptions {
  url: string;
  /** Ms between attempts to reach the database while it is unavailable. */
  retryInterval: number;
  /** Pooled connections for writes and reads, besides the session. */
  poolSize: number;
  /** Ms a query may wait for its answer before the database counts as unreachable. */
  queryTimeout: number;
  /** Ms to connect, and to wait for a free pooled connection. */
  connectionTimeout: number;
  /** Ms after which the server ends the session if it stays idle (its instance is gone). */
  idleSessionTimeout: number;
}

/** What the store hears from its link. */
export interface LinkEvents {
  /** A NOTIFY on a channel the session listens to, with its payload. */
  notification(channel: string, payload: string | undefined): void;
  /** The session is gone (and with it any advisory lock it held). */
  sessionLost(): void;
  /** The database is unavailable (an error) or back (undefined, with a new session). */
  availability(unavailable: Error | undefined): void;
}

/** Shows in pg_stat_activity which process a connection belongs to (and which one stamps). */
const APPLICATION_NAME = `sync-connection ${process.pid}`;
/** Ms a connection gets to say goodbye (Terminate) before its socket is destroyed. */
const END_GRACE_MS = 1000;

/**
 * Server-side settings against a peer that vanishes without closing (power loss, partition): the
 * backend probes an idle socket after 5 s, every 5 s, and gives up after 3 unanswered probes;
 * unacknowledged data counts as lost after 20 s; a running query checks its client every 5 s.
 * Without them the backend (and the stamper lock a session holds) would outlive its host by the
 * OS's keepalive default, two hours.
 */
const DEAD_PEER_OPTIONS = '-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 -c tcp_user_timeout=20000 -c client_connection_check_interval=5000';

/**
 * One instance's connections to PostgreSQL: a pool for writes and reads, and one session that
 * LISTENs (and holds the stamper lock and stamps while the instance is the stamper). It tells
 * when the database is lost, reconnects until it is back, and makes reads wait meanwhile.
 */
export class PostgresLink {
  readonly pool: pg.Pool;
  readonly #options: LinkOptions;
  readonly #events: LinkEvents;
  readonly #clientConfig: pg.ClientConfig;
  #session: pg.Client | undefined;
  #unavailable: Error | undefined;
  #back: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  #closed = false;

  constructor(options: LinkOptions, events: LinkEvents) {
    this.#options = options;
    this.#events = events;
    this.#clientConfig = {
      connectionString: options.url,
      application_name: APPLICATION_NAME,
      connectionTimeoutMillis: options.connectionTimeout,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      query_timeout: options.queryTimeout,
    };
    const statementTimeout = Math.max(1, Math.floor(options.queryTimeout * 5 / 6));
    this.pool = new pg.Pool({
      ...this.#clientConfig,
      Client: PooledClient,
      max: options.poolSize,
      options: `${DEAD_PEER_OPTIONS} -c statement_timeout=${statementTimeout}`,
    });
    // An idle pooled connection that dies (the server restarting) is dropped by the pool; the
    // next query notices whether the database is really gone.
    this.pool.on('error', () => {});
  }

  /** How to open a replication connection: as the others, without a query timeout (a stream never answers). */
  get replicationConfig(): pg.ClientConfig {
    const { query_timeout: _, ...config } = this.#clientConfig;
    return { ...config, options: DEAD_PEER_OPTIONS };
  }

  /** The session, while there is one. */
  get session(): pg.Client | undefined {
    return this.#session;
  }

  /** The error that made the database unavailable; undefined while it is reachable. */
  get unavailable(): Error | undefined {
    return this.#unavailable;
  }

  async openSession(): Promise<void> {
    // A session idle (or idle in a transaction) for this long belongs to an instance that stopped
    // polling: the server ends it, so its stamper lock is released even if no probe could tell.
    const idleLimit = this.#options.idleSessionTimeout;
    const client = new pg.Client({
      ...this.#clientConfig,
      options: `${DEAD_PEER_OPTIONS} -c idle_session_timeout=${idleLimit} -c idle_in_transaction_session_timeout=${idleLimit}`,
    });
    const lost = (error: Error) => {
      if (client !== this.#session || this.#closed) return;
      this.#session = undefined;
      this.#events.sessionLost();
      this.markUnavailable(error);
    };
    client.on('error', lost);
    client.on('end', () => lost(new Error('the database connection closed')));
    client.on('notification', (notification) => this.#events.notification(notification.channel, notification.payload));
    try {
      await client.connect();
      await client.query(`LISTEN ${NAMES.stamped}`);
    } catch (error) {
      void endClient(client);
      throw error;
    }
    if (this.#closed) {
      // close() ran while this was connecting: nobody would ever end this session.
      void endClient(client);
      throw new Error('store is closed');
    }
    this.#session = client;
  }

  /** The database cannot be reached: says so once, and reconnects until it can. */
  markUnavailable(error: unknown): void {
    if (this.#unavailable || this.#closed) return;
    this.#unavailable = new Error(describe(error));
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this.#back = { promise, resolve, reject };
    this.#events.availability(this.#unavailable);
    void this.#recover();
  }

  /** Runs a read, waiting while the database is unavailable and trying again once it is back. */
  async read<T>(read: (db: pg.Pool) => Promise<T>): Promise<T> {
    for (;;) {
      if (this.#closed) throw new Error('store is closed');
      if (this.#back) await this.#back.promise;
      try {
        return await read(this.pool);
      } catch (error) {
        // Waited for a free pooled connection: the database is there, wait again.
        if (isPoolBusy(error) && !this.#closed) continue;
        if (!isConnectionError(error) || this.#closed) throw error;
        this.markUnavailable(error);
      }
    }
  }

  /**
   * As {@link read}, on one pooled connection of its own (for a transaction or a cursor); the
   * connection is discarded rather than returned to the pool when `use` fails.
   */
  readOnOne<T>(use: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.read(async (db) => {
      const client = await db.connect();
      try {
        const result = await use(client);
        client.release();
        return result;
      } catch (error) {
        client.release(true);
        throw error;
      }
    });
  }

  /** Ends the session and the pool; reads waiting for the database are rejected with `why`. */
  async close(why: Error): Promise<void> {
    this.#closed = true;
    this.#back?.reject(why);
    const session = this.#session;
    this.#session = undefined;
    if (session) await endClient(session);
    await this.pool.end().catch(() => {});
  }

  /** Reconnects until the database answers again. */
  async #recover(): Promise<void> {
    const old = this.#session;
    this.#session = undefined;
    this.#events.sessionLost();
    // Not awaited: on a partition a polite end() waits for an answer that never comes.
    if (old) void endClient(old);
    while (!this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, this.#options.retryInterval));
      if (this.#closed) return;
      try {
        await this.openSession();
      } catch {
        continue;
      }
      this.#unavailable = undefined;
      this.#back?.resolve();
      this.#back = undefined;
      this.#events.availability(undefined);
      return;
    }
  }
}

/**
 * A pooled client never raises an 'error' event that nobody hears: pg-pool listens only while a
 * client is idle, and pg parses a whole socket read at once, so the error that ends a connection
 * (a server shutting down) can come right after a query's answer, before its holder releases the
 * client. The next query on it then fails with a connection error, which is handled where it runs.
 */
class PooledClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    this.on('error', () => {});
  }
}

/** Ends a client politely if it answers within a second, else destroys its socket. */
export async function endClient(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), END_GRACE_MS);
  });
  const ended = await Promise.race([client.end().then(() => true, () => true), grace]);
  clearTimeout(timer);
  if (!ended) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
