import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { parseChanges } from '../src/protocol/change.ts';
import { formatLSN, parseLSN, type LSN } from '../src/protocol/lsn.ts';
import type { Edit } from './edit.ts';
import { countChanges, readChanges, readEntityPage, readHead, readStats, rowsAfter, toRecord, PAGE_ROWS, type LogRow } from './postgres-reads.ts';
import { describe, isCancelled, isConnectionError, isPoolBusy, redactUrl } from './postgres-errors.ts';
import { NAMES, prepareDatabase, slotLost } from './postgres-schema.ts';
import { stampOnce } from './postgres-stamper.ts';
import { findOperation, refuseWrite, writeRecord, writeStatus, type Write, type WriteState } from './postgres-writes.ts';
import {
  StoreRefusedError,
  StoreUnavailableError,
  type AppendResult,
  type EntityPage,
  type PageOptions,
  type ReadOptions,
  type StoreStats,
  type StoredRecord,
  type SyncStore,
  type WriteSequence,
} from './sync-store.ts';

export interface PostgresStoreOptions {
  /** Ms between the fallback rounds: read new records, stamp, try to become the stamper. Default 1000. */
  pollInterval?: number;
  /** Ms between attempts to reach the database while it is unavailable. Default 500. */
  retryInterval?: number;
  /** Connections for writes and reads, besides the one session each instance keeps. Default 8. */
  poolSize?: number;
  /**
   * Ms a query may wait for its answer before the database counts as unreachable (a partition
   * sends no error). Default 30000; the server cancels a pooled statement after 5/6 of it.
   */
  queryTimeout?: number;
  /** Ms to connect, and to wait for a free pooled connection. Default 5000. */
  connectionTimeout?: number;
  /**
   * Ms after which the server ends this instance's session if it stays idle (the instance stopped
   * polling: its host is gone), releasing the stamper lock. Default max(20000, 5 * pollInterval).
   */
  idleSessionTimeout?: number;
  /** Most decoded rows (three per write) one stamp pass reads. Default 5000. */
  stampLimit?: number;
  /** Tests: runs after a stamp committed and before the slot is advanced. */
  afterStamp?: () => void | Promise<void>;
}

/** Shows in pg_stat_activity which process a connection belongs to (and which one stamps). */
const APPLICATION_NAME = `sync-connection ${process.pid}`;
const STAMP_LIMIT = 5000;
const FLUSH_TIMEOUT_MS = 5000;
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

interface Waiter {
  resolve(record: StoredRecord): void;
  reject(error: Error): void;
}

/**
 * A {@link SyncStore} kept in PostgreSQL, shared by any number of server instances. A write is one
 * small transaction: it claims its operation id and puts its changes into the write-ahead log as
 * a transactional logical message. One instance at a time, the stamper (whoever holds an advisory
 * lock), reads those messages from a permanent logical replication slot, in commit order, and adds
 * each as a record whose LSN is its commit's end LSN to the change log, applying its changes to
 * the entities in the same transaction. Every instance follows the change log (NOTIFY, plus a
 * poll) and tells its listeners; a write resolves once its own instance has seen its record.
 */
export class PostgresSyncStore implements SyncStore {
  readonly #slot: string;
  readonly #options: Required<Omit<PostgresStoreOptions, 'afterStamp'>> & Pick<PostgresStoreOptions, 'afterStamp'>;
  /** Connection settings shared by the pool and the session. */
  readonly #clientConfig: pg.ClientConfig;
  readonly #pool: pg.Pool;
  readonly #listeners = new Set<(record: StoredRecord) => void>();
  readonly #availabilityListeners = new Set<(unavailable: Error | undefined) => void>();
  readonly #failureListeners = new Set<(error: Error) => void>();
  #failure: Error | undefined;
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Per client connection: the write whose commit the next one waits for (see #appendInSequence). */
  readonly #sequences = new WeakMap<WriteSequence, { tail: Promise<void>; queued: number; deferredUpTo: number }>();
  /** The one connection that LISTENs and, while this instance is the stamper, holds the lock. */
  #session: pg.Client | undefined;
  #stamper = false;
  #headPosition: bigint;
  #unavailable: Error | undefined;
  #back: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #pulling: Promise<void> | undefined;
  #pullAgain = false;
  #stamping: Promise<void> | undefined;
  #stampAgain = false;
  #tryingLock = false;
  #signalling = false;
  #signalAgain = false;
  #closed = false;

  private constructor(url: string, slot: string, head: bigint, options: PostgresStoreOptions) {
    this.#slot = slot;
    this.#headPosition = head;
    this.#options = {
      pollInterval: options.pollInterval ?? 1000,
      retryInterval: options.retryInterval ?? 500,
      poolSize: options.poolSize ?? 8,
      queryTimeout: options.queryTimeout ?? 30_000,
      connectionTimeout: options.connectionTimeout ?? 5000,
      idleSessionTimeout: options.idleSessionTimeout ?? Math.max(20_000, (options.pollInterval ?? 1000) * 5),
      stampLimit: options.stampLimit ?? STAMP_LIMIT,
      afterStamp: options.afterStamp,
    };
    this.#clientConfig = {
      connectionString: url,
      application_name: APPLICATION_NAME,
      connectionTimeoutMillis: this.#options.connectionTimeout,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      query_timeout: this.#options.queryTimeout,
    };
    const statementTimeout = Math.max(1, Math.floor(this.#options.queryTimeout * 5 / 6));
    this.#pool = new pg.Pool({
      ...this.#clientConfig,
      max: this.#options.poolSize,
      options: `${DEAD_PEER_OPTIONS} -c statement_timeout=${statementTimeout}`,
    });
    // An idle pooled connection that dies (the server restarting) is dropped by the pool; the
    // next query notices whether the database is really gone.
    this.#pool.on('error', () => {});
  }

  /**
   * Connects, creates the tables, publication and slot if missing, and starts following the log
   * from its current head. Throws, saying why, when the database cannot be reached or used.
   */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresSyncStore> {
    const setup = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    setup.on('error', () => {});
    let slot: string;
    let head: bigint;
    try {
      await setup.connect();
    } catch (error) {
      throw new Error(`cannot reach PostgreSQL at ${redactUrl(url)}: ${describe(error)}`);
    }
    try {
      ({ slot } = await prepareDatabase(setup));
      head = await readHead(setup);
    } catch (error) {
      throw new Error(`cannot use PostgreSQL at ${redactUrl(url)}: ${describe(error)}`);
    } finally {
      await setup.end().catch(() => {});
    }
    const store = new PostgresSyncStore(url, slot, head, options);
    try {
      await store.#openSession();
    } catch (error) {
      await store.#pool.end().catch(() => {});
      throw new Error(`cannot reach PostgreSQL at ${redactUrl(url)}: ${describe(error)}`);
    }
    store.#timer = setInterval(() => store.#tick(), store.#options.pollInterval);
    store.#tryLock();
    return store;
  }

  get head(): LSN {
    return formatLSN(this.#headPosition);
  }

  get headPosition(): bigint {
    return this.#headPosition;
  }

  /**
   * Set once the replication slot is gone or invalidated: nothing can be stamped any more. An
   * unreachable database is only unavailable for a while, never this.
   */
  get failure(): Error | undefined {
    return this.#failure;
  }

  /** True while this instance holds the stamper lock (for tests and stats). */
  get isStamper(): boolean {
    return this.#stamper;
  }

  /** The error that made the database unavailable; undefined while it is reachable. */
  get unavailable(): Error | undefined {
    return this.#unavailable;
  }

  async latestPosition(): Promise<bigint> {
    const latest = await this.#read(readHead);
    return latest > this.#headPosition ? latest : this.#headPosition;
  }

  /** A patch is merged by the stamper, in commit order: see stampOnce. */
  append(edits: readonly Edit[], operationId?: string, sequence?: WriteSequence): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    if (this.#failure) return Promise.reject(this.#failure);
    if (edits.length === 0) return Promise.reject(new Error('a record needs at least one change'));
    // Refused before anything is written: a write PostgreSQL cannot hold must never reach the log.
    const refusal = refuseWrite(edits, operationId);
    if (refusal !== undefined) return Promise.reject(new StoreRefusedError(refusal));
    if (this.#unavailable) {
      return Promise.reject(new StoreUnavailableError(`the database is unavailable (${this.#unavailable.message}); nothing was stored, so it can be sent again`));
    }
    const write: Write = { writeId: randomUUID(), changes: [...edits] };
    if (operationId !== undefined) write.operationId = operationId;
    const result = sequence ? this.#appendInSequence(write, sequence) : this.#append(write);
    this.#inFlight.add(result);
    const forget = () => this.#inFlight.delete(result);
    result.then(forget, forget);
    return result;
  }

  changesAfter(after: bigint, options: ReadOptions): Promise<StoredRecord[]> {
    return this.#read((db) => readChanges(db, after, options));
  }

  countChangesAfter(after: bigint, until: bigint): Promise<number> {
    return this.#read((db) => countChanges(db, after, until));
  }

  entities(page: PageOptions): Promise<EntityPage> {
    return this.#read(async (db) => {
      const client = await db.connect();
      try {
        const result = await readEntityPage(client, page);
        client.release();
        return result;
      } catch (error) {
        client.release(true);
        throw error;
      }
    });
  }

  stats(): Promise<StoreStats> {
    return this.#read(readStats);
  }

  subscribe(listener: (record: StoredRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onFailure(listener: (error: Error) => void): () => void {
    this.#failureListeners.add(listener);
    return () => this.#failureListeners.delete(listener);
  }

  onAvailability(listener: (unavailable: Error | undefined) => void): () => void {
    this.#availabilityListeners.add(listener);
    return () => this.#availabilityListeners.delete(listener);
  }

  /** Waits for the appends under way to settle (at most a few seconds while the database is away). */
  async flush(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
    });
    await Promise.race([Promise.allSettled([...this.#inFlight]), bounded]);
    clearTimeout(timer);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    const closing = new StoreUnavailableError('the server is shutting down');
    for (const waiters of this.#waiters.values()) for (const waiter of waiters) waiter.reject(closing);
    this.#waiters.clear();
    this.#back?.reject(closing);
    await Promise.allSettled([this.#stamping, this.#pulling]);
    const session = this.#session;
    this.#session = undefined;
    this.#stamper = false;
    if (session) await endClient(session);
    await this.#pool.end().catch(() => {});
    this.#listeners.clear();
    this.#availabilityListeners.clear();
    this.#failureListeners.clear();
  }

  // ---- writes ---------------------------------------------------------------------------------

  /**
   * Writes run on different pooled connections, so two writes in flight could commit in either
   * order: one sequence's writes each wait for the one before to commit (not to be stamped).
   * A write that the store could not take now defers every write queued behind it, untried.
   */
  async #appendInSequence(write: Write, key: WriteSequence): Promise<AppendResult> {
    let sequence = this.#sequences.get(key);
    if (!sequence) this.#sequences.set(key, (sequence = { tail: Promise.resolve(), queued: 0, deferredUpTo: 0 }));
    const state = sequence;
    const index = ++state.queued;
    let done!: () => void;
    const turn = state.tail;
    state.tail = new Promise<void>((resolve) => { done = resolve; });
    try {
      await turn;
      if (index <= state.deferredUpTo) {
        throw new StoreUnavailableError('a write sent before this one was not stored; nothing was stored, so it can be sent again after that one');
      }
      return await this.#append(write, done);
    } catch (error) {
      if (error instanceof StoreUnavailableError) state.deferredUpTo = state.queued;
      throw error;
    } finally {
      done();
    }
  }

  /** `committed` is called once the write's transaction is over (before its record is stamped). */
  async #append(write: Write, committed?: () => void): Promise<AppendResult> {
    // Registered before the write, so the record cannot be announced before anyone waits for it.
    const stamped = this.#waitFor(write.writeId);
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (error) {
      stamped.cancel();
      throw this.#refused(error);
    }
    let applied: boolean;
    try {
      applied = await writeRecord(client, write);
      client.release();
      committed?.();
    } catch (error) {
      client.release(true);
      if (!isConnectionError(error)) {
        stamped.cancel();
        // A value PostgreSQL rejects (a data exception, a size limit): final, not a store failure.
        if (isRefusal(error)) throw new StoreRefusedError(`PostgreSQL cannot store this write: ${describe(error)}`);
        // Cancelled by statement_timeout: rolled back, so nothing was stored.
        if (isCancelled(error)) throw new StoreUnavailableError(`the database did not answer in time (${describe(error)}); nothing was stored, so it can be sent again`);
        throw error;
      }
      // The connection broke while the write was under way: it may or may not have committed.
      // Only the database can tell, once it is back.
      this.#markUnavailable(error);
      return this.#settleUnknown(write, stamped);
    }
    if (!applied) {
      stamped.cancel();
      return this.#duplicate(write.operationId!);
    }
    this.#signalWritten();
    const record = await stamped.promise;
    return { lsn: record.lsn, position: record.position, duplicate: false };
  }

  /** A connection error before anything was sent: certainly not applied. */
  #refused(error: unknown): Error {
    if (isPoolBusy(error)) {
      // Every pooled connection was busy for connectionTimeout: this one write waits no longer,
      // but the database is there, so the instance stays available.
      return new StoreUnavailableError('the database is busy (no free connection in time); nothing was stored, so it can be sent again');
    }
    if (!isConnectionError(error)) return error instanceof Error ? error : new Error(String(error));
    this.#markUnavailable(error);
    return new StoreUnavailableError(`the database is unavailable (${describe(error)}); nothing was stored, so it can be sent again`);
  }

  async #settleUnknown(write: Write, stamped: { promise: Promise<StoredRecord>; cancel(): void }): Promise<AppendResult> {
    const status = await this.#read((db) => writeStatus(db, write.writeId)).catch((error: unknown) => {
      stamped.cancel();
      throw error;
    });
    if (status === undefined) {
      stamped.cancel();
      throw new StoreUnavailableError('the database connection was lost before the write committed; nothing was stored, so it can be sent again');
    }
    const record = await stamped.promise;
    return { lsn: record.lsn, position: record.position, duplicate: false };
  }

  /** The operation was applied by an earlier write, maybe on another instance: its record's LSN. */
  async #duplicate(operationId: string): Promise<AppendResult> {
    const found = await this.#read((db) => findOperation(db, operationId));
    if (!found) throw new Error(`operation ${operationId} conflicted but was not found`);
    if (found.lsn !== null) return settled(found, true);
    const stamped = this.#waitFor(found.writeId);
    const again = await this.#read((db) => writeStatus(db, found.writeId));
    if (again && again.lsn !== null) {
      stamped.cancel();
      return settled(again, true);
    }
    const record = await stamped.promise;
    return { lsn: record.lsn, position: record.position, duplicate: true };
  }

  #waitFor(writeId: string): { promise: Promise<StoredRecord>; cancel(): void } {
    let waiter!: Waiter;
    const promise = new Promise<StoredRecord>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    let set = this.#waiters.get(writeId);
    if (!set) this.#waiters.set(writeId, (set = new Set()));
    set.add(waiter);
    return {
      promise,
      cancel: () => {
        set.delete(waiter);
        if (set.size === 0 && this.#waiters.get(writeId) === set) this.#waiters.delete(writeId);
      },
    };
  }

  /** Tells the stamper there is work: at once if it is us, else one NOTIFY at a time. */
  #signalWritten(): void {
    if (this.#stamper) {
      this.#stampSoon();
      return;
    }
    const session = this.#session;
    if (this.#signalling || !session) {
      this.#signalAgain = true;
      return;
    }
    this.#signalling = true;
    this.#signalAgain = false;
    // Outside the write's transaction: a NOTIFY in it would serialize the commits of all writers.
    session.query('SELECT pg_notify($1, \'\')', [NAMES.written]).catch(() => {
      // The stamper also polls; a lost session is noticed by its own error handler.
    }).finally(() => {
      this.#signalling = false;
      if (this.#signalAgain) this.#signalWritten();
    });
  }

  // ---- following the log ----------------------------------------------------------------------

  /** Reads the records after the head and announces them; runs one at a time. */
  #pull(): void {
    if (this.#closed || this.#unavailable) return;
    if (this.#pulling) {
      this.#pullAgain = true;
      return;
    }
    this.#pulling = (async () => {
      do {
        this.#pullAgain = false;
        for (;;) {
          const rows = await rowsAfter(this.#pool, this.#headPosition);
          for (const row of rows) this.#announce(row);
          if (rows.length < PAGE_ROWS || this.#closed) break;
        }
      } while (this.#pullAgain && !this.#closed);
    })()
      .catch((error: unknown) => this.#trouble(error))
      .finally(() => {
        this.#pulling = undefined;
      });
  }

  #announce(row: LogRow): void {
    const record = toRecord(row);
    if (record.position <= this.#headPosition) return;
    this.#headPosition = record.position;
    if (row.refused !== null) {
      // Nothing to send: its writer is told, for good, why it was not applied.
      const waiters = this.#waiters.get(row.write_id);
      this.#waiters.delete(row.write_id);
      for (const waiter of waiters ?? []) waiter.reject(new StoreRefusedError(row.refused));
      return;
    }
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        process.emitWarning(`sync store listener failed: ${String(error)}`);
      }
    }
    const waiters = this.#waiters.get(row.write_id);
    if (waiters) {
      this.#waiters.delete(row.write_id);
      for (const waiter of waiters) waiter.resolve(record);
    }
  }

  // ---- stamping -------------------------------------------------------------------------------

  #tryLock(): void {
    const session = this.#session;
    if (this.#stamper || this.#tryingLock || !session || this.#closed) return;
    this.#tryingLock = true;
    session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [NAMES.stamperLock.toString()]).then(
      (result) => {
        if (result.rows[0]?.locked === true && session === this.#session && !this.#closed) {
          this.#stamper = true;
          this.#stampSoon();
        }
      },
      (error: unknown) => this.#trouble(error),
    ).finally(() => {
      this.#tryingLock = false;
    });
  }

  #stampSoon(): void {
    if (!this.#stamper || this.#closed) return;
    if (this.#stamping) {
      this.#stampAgain = true;
      return;
    }
    this.#stamping = (async () => {
      do {
        this.#stampAgain = false;
        const session = this.#session;
        if (!session || !this.#stamper) break;
        const options = { slot: this.#slot, limit: this.#options.stampLimit, afterCommit: this.#options.afterStamp };
        let result: Awaited<ReturnType<typeof stampOnce>>;
        try {
          result = await stampOnce(session, options);
        } catch (error) {
          if (isSlotGone(error)) this.#fail(new Error(slotLost(this.#slot, `cannot be read (${describe(error)})`)));
          throw error;
        }
        if (result.stamped > 0) this.#pull();
        if (result.more) this.#stampAgain = true;
      } while (this.#stampAgain && !this.#closed);
    })()
      .catch((error: unknown) => this.#trouble(error))
      .finally(() => {
        this.#stamping = undefined;
      });
  }

  // ---- availability ---------------------------------------------------------------------------

  /** The slot is gone: nothing more can be stamped, here or anywhere. Said loudly, once. */
  #fail(error: Error): void {
    if (this.#failure || this.#closed) return;
    this.#failure = error;
    this.#stamper = false;
    console.error(`sync store (PostgreSQL) failed: ${error.message}`);
    for (const waiters of this.#waiters.values()) for (const waiter of waiters) waiter.reject(error);
    this.#waiters.clear();
    for (const listener of this.#failureListeners) listener(error);
  }

  /** The fallback round: catches up on anything a lost notification did not announce. */
  #tick(): void {
    if (this.#closed || this.#unavailable || this.#failure) return;
    this.#pull();
    if (this.#stamper) this.#stampSoon();
    else this.#tryLock();
  }

  /** A background step failed: a lost database makes the store unavailable; anything else is reported. */
  #trouble(error: unknown): void {
    if (this.#closed || this.#failure) return;
    // A busy pool is load, not an outage: the next round tries again.
    if (isPoolBusy(error)) return;
    if (isConnectionError(error)) this.#markUnavailable(error);
    else process.emitWarning(`sync store (PostgreSQL): ${describe(error)}`);
  }

  async #openSession(): Promise<void> {
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
      this.#stamper = false;
      this.#markUnavailable(error);
    };
    client.on('error', lost);
    client.on('end', () => lost(new Error('the database connection closed')));
    client.on('notification', (notification) => {
      if (notification.channel === NAMES.stamped) this.#pull();
      else if (notification.channel === NAMES.written) this.#stampSoon();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${NAMES.stamped}; LISTEN ${NAMES.written}`);
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

  #markUnavailable(error: unknown): void {
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
    for (const listener of this.#availabilityListeners) listener(this.#unavailable);
    void this.#recover();
  }

  /** Reconnects until the database answers again, then catches up on what happened meanwhile. */
  async #recover(): Promise<void> {
    const old = this.#session;
    this.#session = undefined;
    this.#stamper = false;
    // Not awaited: on a partition a polite end() waits for an answer that never comes.
    if (old) void endClient(old);
    while (!this.#closed) {
      await new Promise((resolve) => setTimeout(resolve, this.#options.retryInterval));
      if (this.#closed) return;
      try {
        await this.#openSession();
      } catch {
        continue;
      }
      this.#unavailable = undefined;
      this.#back?.resolve();
      this.#back = undefined;
      for (const listener of this.#availabilityListeners) listener(undefined);
      this.#pull();
      this.#tryLock();
      return;
    }
  }

  /** Runs a read, waiting while the database is unavailable and trying again once it is back. */
  async #read<T>(read: (db: pg.Pool) => Promise<T>): Promise<T> {
    for (;;) {
      if (this.#closed) throw new Error('store is closed');
      if (this.#back) await this.#back.promise;
      try {
        return await read(this.#pool);
      } catch (error) {
        // Waited for a free pooled connection: the database is there, wait again.
        if (isPoolBusy(error) && !this.#closed) continue;
        if (!isConnectionError(error) || this.#closed) throw error;
        this.#markUnavailable(error);
      }
    }
  }
}

/** The answer for a write already stamped: its record's LSN, or why it was refused. */
function settled(state: WriteState, duplicate: boolean): AppendResult {
  if (state.refused !== null) throw new StoreRefusedError(state.refused);
  const position = state.lsn === null ? undefined : parseLSN(state.lsn);
  if (position === undefined) throw new Error(`malformed LSN ${state.lsn} in the change log`);
  return { lsn: formatLSN(position), position, duplicate };
}

/** The replication slot was dropped (42704) or invalidated (55000) under the stamper. */
function isSlotGone(error: unknown): boolean {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return (code === '42704' || code === '55000') && error instanceof Error && /replication slot/i.test(error.message);
}

/** SQLSTATE 22 (data exception) and 54 (program limit exceeded): this value can never be stored. */
function isRefusal(error: unknown): boolean {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^(22|54)/.test(code);
}

/** Ends a client politely if it answers within a second, else destroys its socket. */
async function endClient(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), END_GRACE_MS);
  });
  const ended = await Promise.race([client.end().then(() => true, () => true), grace]);
  clearTimeout(timer);
  if (!ended) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}
