import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { formatLSN, type LSN } from '../src/protocol/lsn.ts';
import type { Edit } from './edit.ts';
import { PostgresAppender } from './postgres-appender.ts';
import { compactLog } from './postgres-compaction.ts';
import { describe, isConnectionError, isPoolBusy, redactUrl } from './postgres-errors.ts';
import { PostgresLink } from './postgres-link.ts';
import type { PostgresStoreOptions } from './postgres-options.ts';
import { decodeAnnouncement, type Announcement } from './postgres-announcement.ts';
import { countChanges, readChanges, readCompactionFloor, readEntity, readEntityPage, readHead, readStats, rowsAfter, toRecord, PAGE_ROWS, type LogRow } from './postgres-reads.ts';
import { NAMES, prepareDatabase } from './postgres-schema.ts';
import { StampStream, type StampStreamOptions } from './postgres-stamp-stream.ts';
import { StampWaiters } from './postgres-waiters.ts';
import { refuseWrite, type Write } from './postgres-writes.ts';
import { refusalFrom } from './scopes.ts';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  StoreRefusedError,
  StoreUnavailableError,
  type CompactionReport,
  type CompactOptions,
  type AppendOptions,
  type AppendResult,
  type ScopedEntity,
  type EntityPage,
  type PageOptions,
  type ReadOptions,
  type StoreStats,
  type StoredRecord,
  type SyncStore,
  type WriteSequence,
} from './sync-store.ts';

export type { PostgresStoreOptions } from './postgres-options.ts';

const STAMP_LIMIT = 2000;
const FLUSH_TIMEOUT_MS = 5000;

/**
 * A {@link SyncStore} kept in PostgreSQL, shared by any number of server instances. A write is one
 * small transaction: it claims its operation id and puts its changes into the write-ahead log as
 * a transactional logical message. One instance at a time, the stamper (whoever holds an advisory
 * lock), streams those messages from a permanent logical replication slot, in commit order, and
 * adds each as a record whose LSN is its commit's end LSN to the change log, applying its changes
 * to the entities in the same transaction. Every instance follows the change log (NOTIFY, plus a
 * poll) and tells its listeners; a write resolves once its own instance has seen its record.
 */
export class PostgresSyncStore implements SyncStore {
  readonly #tombstoneRetention: number;
  readonly #stampOptions: Omit<StampStreamOptions, 'config'>;
  readonly #link: PostgresLink;
  readonly #waiters = new StampWaiters();
  readonly #appender: PostgresAppender;
  readonly #listeners = new Set<(record: StoredRecord) => void>();
  readonly #availabilityListeners = new Set<(unavailable: Error | undefined) => void>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #stamper: StampStream | undefined;
  #headPosition: bigint;
  #timer: NodeJS.Timeout | undefined;
  #pulling: Promise<void> | undefined;
  #pullAgain = false;
  #tryingLock = false;
  #closed = false;

  private constructor(url: string, slot: string, head: bigint, options: PostgresStoreOptions) {
    this.#tombstoneRetention = options.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS;
    this.#headPosition = head;
    const retryInterval = options.retryInterval ?? 500;
    const idleSessionTimeout = options.idleSessionTimeout ?? Math.max(20_000, (options.pollInterval ?? 1000) * 5);
    this.#stampOptions = {
      slot,
      limit: options.stampLimit ?? STAMP_LIMIT,
      retryInterval,
      timeout: idleSessionTimeout,
      afterCommit: options.afterStamp,
      scopeOf: options.scopeOf,
    };
    this.#link = new PostgresLink({
      url,
      retryInterval,
      poolSize: options.poolSize ?? 8,
      queryTimeout: options.queryTimeout ?? 30_000,
      connectionTimeout: options.connectionTimeout ?? 5000,
      idleSessionTimeout,
    }, {
      notification: (channel, payload) => {
        if (channel === NAMES.stamped) this.#heard(decodeAnnouncement(payload));
      },
      sessionLost: () => void this.#stopStamping(),
      availability: (unavailable) => {
        for (const listener of this.#availabilityListeners) listener(unavailable);
        if (unavailable) return;
        // Back: catch up on what happened meanwhile.
        this.#pull();
        this.#tryLock();
      },
    });
    this.#appender = new PostgresAppender(this.#link, this.#waiters);
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
      await store.#link.openSession();
    } catch (error) {
      await store.#link.close(new Error('store is closed'));
      throw new Error(`cannot reach PostgreSQL at ${redactUrl(url)}: ${describe(error)}`);
    }
    store.#timer = setInterval(() => store.#tick(), options.pollInterval ?? 1000);
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
   * Never set: an unreachable database is only unavailable for a while, and a lost replication
   * slot is created anew by the stamper, which then stamps the writes it missed.
   */
  get failure(): Error | undefined {
    return undefined;
  }

  /** True while this instance holds the stamper lock (for tests and stats). */
  get isStamper(): boolean {
    return this.#stamper !== undefined;
  }

  /** The error that made the database unavailable; undefined while it is reachable. */
  get unavailable(): Error | undefined {
    return this.#link.unavailable;
  }

  async latestPosition(): Promise<bigint> {
    const latest = await this.#link.read(readHead);
    return latest > this.#headPosition ? latest : this.#headPosition;
  }

  /** A patch is merged by the stamper, in commit order: see stampTransactions. */
  append(edits: readonly Edit[], operationId?: string, sequence?: WriteSequence, options: AppendOptions = {}): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    if (edits.length === 0) return Promise.reject(new Error('a record needs at least one change'));
    // Refused before anything is written: a write PostgreSQL cannot hold must never reach the log.
    const refusal = refuseWrite(edits, operationId);
    if (refusal !== undefined) return Promise.reject(new StoreRefusedError(refusal));
    const unavailable = this.#link.unavailable;
    if (unavailable) {
      return Promise.reject(new StoreUnavailableError(`the database is unavailable (${unavailable.message}); nothing was stored, so it can be sent again`));
    }
    const write: Write = { writeId: randomUUID(), changes: [...edits] };
    if (operationId !== undefined) write.operationId = operationId;
    if (operationId !== undefined && options.fingerprint !== undefined) write.fingerprint = options.fingerprint;
    if (options.allowedScopes !== undefined) write.allowedScopes = [...options.allowedScopes];
    const result = this.#appender.append(write, sequence);
    this.#inFlight.add(result);
    const forget = () => this.#inFlight.delete(result);
    result.then(forget, forget);
    return result;
  }

  changesAfter(after: bigint, options: ReadOptions): Promise<StoredRecord[]> {
    return this.#link.read((db) => readChanges(db, after, options));
  }

  /** One transaction; the head record is left as it is (see compactLog). */
  async compact({ horizon, now = Date.now() }: CompactOptions = {}): Promise<CompactionReport> {
    const head = await this.latestPosition();
    const target = horizon === undefined || horizon > head ? head : horizon;
    const retention = this.#tombstoneRetention;
    return this.#link.readOnOne((client) => compactLog(client, target, now - retention));
  }

  compactionFloor(): Promise<bigint> {
    return this.#link.read(readCompactionFloor);
  }

  countChangesAfter(after: bigint, until: bigint, scopes?: readonly string[]): Promise<number> {
    return this.#link.read((db) => countChanges(db, after, until, scopes));
  }

  /** As of the last stamp: a write committed and not yet stamped is not in it. */
  entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined> {
    return this.#link.read((db) => readEntity(db, entityType, entityId));
  }

  entities(page: PageOptions): Promise<EntityPage> {
    return this.#link.readOnOne((client) => readEntityPage(client, page));
  }

  stats(): Promise<StoreStats> {
    return this.#link.read(readStats);
  }

  subscribe(listener: (record: StoredRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onFailure(_listener: (error: Error) => void): () => void {
    return () => {};
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
    this.#waiters.rejectAll(closing);
    await Promise.allSettled([this.#stopStamping(), this.#pulling]);
    await this.#link.close(closing);
    this.#listeners.clear();
    this.#availabilityListeners.clear();
  }

  // ---- following the log ----------------------------------------------------------------------

  /** Reads the records after the head and announces them; runs one at a time. */
  /**
   * A stamp was announced: its records are taken from the notification when they follow this
   * server's head directly and no read of the log is under way; otherwise the log is read.
   */
  #heard(announced: Announcement | undefined): void {
    if (this.#closed) return;
    if (announced && announced.head <= this.#headPosition) return;
    const added = announced?.added;
    if (added && added.after === this.#headPosition && !this.#pulling) {
      try {
        for (const row of added.rows) this.#announce(row);
        return;
      } catch (error) {
        this.#trouble(error);
      }
    }
    this.#pull();
  }

  #pull(): void {
    if (this.#closed || this.#link.unavailable) return;
    if (this.#pulling) {
      this.#pullAgain = true;
      return;
    }
    this.#pulling = (async () => {
      do {
        this.#pullAgain = false;
        for (;;) {
          const rows = await rowsAfter(this.#link.pool, this.#headPosition);
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
      this.#waiters.reject(row.write_id, refusalFrom(row.refused));
      return;
    }
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        process.emitWarning(`sync store listener failed: ${String(error)}`);
      }
    }
    this.#waiters.resolve(row.write_id, record);
  }

  // ---- stamping -------------------------------------------------------------------------------

  #tryLock(): void {
    const session = this.#link.session;
    if (this.#stamper || this.#tryingLock || !session || this.#closed) return;
    this.#tryingLock = true;
    session.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [NAMES.stamperLock.toString()]).then(
      (result) => {
        if (result.rows[0]?.locked === true && session === this.#link.session && !this.#closed) this.#startStamping(session);
      },
      (error: unknown) => this.#trouble(error),
    ).finally(() => {
      this.#tryingLock = false;
    });
  }

  /** This instance holds the stamper lock on `session`: it follows the slot until the session is lost. */
  #startStamping(session: pg.Client): void {
    this.#stamper = new StampStream({ ...this.#stampOptions, config: this.#link.replicationConfig }, {
      session: () => (this.#link.session === session ? session : undefined),
      stamped: () => this.#pull(),
      trouble: (error) => this.#trouble(error),
    });
  }

  async #stopStamping(): Promise<void> {
    const stamper = this.#stamper;
    this.#stamper = undefined;
    await stamper?.stop();
  }

  /**
   * The fallback round: catches up on anything a lost notification did not announce, and keeps the
   * stamper's session busy enough that the server does not end it as idle.
   */
  #tick(): void {
    if (this.#closed || this.#link.unavailable) return;
    this.#pull();
    if (this.#stamper) this.#stamper.touch();
    else this.#tryLock();
  }

  /** A background step failed: a lost database makes the store unavailable; anything else is reported. */
  #trouble(error: unknown): void {
    if (this.#closed) return;
    // A busy pool is load, not an outage: the next round tries again.
    if (isPoolBusy(error)) return;
    if (isConnectionError(error)) this.#link.markUnavailable(error);
    else process.emitWarning(`sync store (PostgreSQL): ${describe(error)}`);
  }
}
