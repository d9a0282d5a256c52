import type { Change } from '../src/protocol/change.ts';
import { formatLSN, type LSN } from '../src/protocol/lsn.ts';
import type { Edit } from './edit.ts';
import type { ChangeScope } from './scopes.ts';

/** One appended batch of changes; its LSN orders it in the log. */
export interface StoredRecord {
  lsn: LSN;
  /** The LSN as its 64-bit value, for comparisons. */
  position: bigint;
  changes: readonly Change[];
  /** The id of the client operation this record applied, if it came from one. */
  operationId?: string;
  /**
   * `changes` as the JSON array text the store read them as, when it has it: a frame can then be
   * put together without parsing and serializing them again.
   */
  changesJson?: string;
  /** Each change's scope, in order; absent when every change is in the default scope. */
  scopes?: readonly ChangeScope[];
}

export interface AppendResult {
  lsn: LSN;
  position: bigint;
  /** True when the operation id had been applied before: nothing was appended. */
  duplicate: boolean;
  /** For a duplicate: the fingerprint the first write of the id was stored with, when it had one. */
  fingerprint?: string;
}

/** What an append carries besides its edits. */
export interface AppendOptions {
  /**
   * The writer's scopes: a change to an entity in, or into, any other scope is refused with
   * {@link StoreRefusedError}, checked in the store's write order. Absent, or holding `'*'`: any.
   */
  allowedScopes?: readonly string[];
  /** A digest of the operation, kept with its id and handed back to a later duplicate. */
  fingerprint?: string;
}

/** An entity's current value and scope. */
export interface ScopedEntity extends Entity {
  scope: string;
}

/** The current value of one entity. */
export interface Entity {
  entityType: string;
  entityId: string;
  data: unknown;
}

/**
 * One page of the entities. `lsn`: the log position the page was read at (pages read later may
 * reflect later writes). `next`: the cursor for the following page; absent on the last one.
 */
export interface EntityPage {
  lsn: LSN;
  entities: Entity[];
  next?: string;
}

export interface PageOptions {
  /** Most entities in the page. */
  limit: number;
  /** A `next` cursor from the page before; absent for the first page. */
  after?: string;
  /** Only entities in these scopes; absent: all. */
  scopes?: readonly string[];
}

/** A page cursor that this store did not hand out (or no longer can follow). */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
}

export interface StoreStats {
  lsn: LSN;
  records: number;
  changes: number;
  entities: number;
  /** Distinct operation ids applied, over the whole log. */
  operationsApplied: number;
}

export interface ReadOptions {
  /** Highest position to include. */
  until: bigint;
  /** Whole records holding at most this many changes in total (at least one record). */
  maxChanges: number;
  /** Whole records of about this many bytes in total (at least one record). Default 1 MiB. */
  maxBytes?: number;
  /**
   * Only the records that touch one of these scopes (a change in one, or an entity moving out of
   * one), found through the store's scope index; absent: every record.
   */
  scopes?: readonly string[];
  /**
   * The compaction floor when this reader's catch-up began (`compactionFloor()`): the read throws
   * {@link LogCompactedError} if the floor has since risen above both it and `after` (a delete the
   * reader had not reached yet may be gone). Absent: the read throws when `after` is neither 0 nor
   * at or above the floor.
   */
  floor?: bigint;
}

/** What `compact` is asked to do. */
export interface CompactOptions {
  /** Compact the records at or below this LSN; default: the head. Above the head counts as the head. */
  horizon?: bigint;
  /** The time now, in ms since the epoch (default `Date.now()`): removals older than the retention before it are dropped. */
  now?: number;
}

/** What one compaction did. */
export interface CompactionReport {
  /** The LSN it compacted up to. */
  horizon: LSN;
  /** The highest LSN of a dropped delete or move: a client whose resume point is below it gets `reset`. */
  floor: LSN;
  /** Changes in the log before and after. */
  changesBefore: number;
  changesAfter: number;
  /** Deletes and moves out of a scope dropped by this compaction (older than the retention). */
  removalsDropped: number;
  /** False when it had nothing to drop and left the store as it was. */
  compacted: boolean;
}

/** The default time a delete (or a move out of a scope) is kept below the compaction horizon: 30 days. */
export const DEFAULT_TOMBSTONE_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * Thrown by `changesAfter` when a read from `after` could miss a delete that compaction dropped:
 * a client that holds data up to `after` must start over (protocol `reset`).
 */
export class LogCompactedError extends Error {
  override readonly name = 'LogCompactedError';
  readonly floor: bigint;

  constructor(after: bigint, floor: bigint) {
    super(`the log was compacted past ${formatLSN(after)}: deletes up to ${formatLSN(floor)} are no longer kept`);
    this.floor = floor;
  }
}

/** Whether a read from `after`, by a reader that began under the floor `known`, may have missed a dropped delete. */
export function missedRemovals(after: bigint, floor: bigint, known: bigint | undefined): boolean {
  const since = known ?? (after === 0n ? floor : 0n);
  return floor > since && floor > after;
}

/** What a page of reads holds by default, in bytes (at least one record or entity). */
export const PAGE_BYTES = 1024 * 1024;

/**
 * Thrown by `append` when the store cannot take writes right now but may again later (its
 * database is unreachable): the write was certainly not applied, so sending it again, with the
 * same operation id, is safe.
 */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
}

/**
 * Thrown by `append` when the store refuses this write for good: it holds something the storage
 * cannot keep (e.g. a NUL character in an id for PostgreSQL). Nothing was applied, and sending
 * the same write again would be refused again, so it is answered as rejected, not retried.
 */
export class StoreRefusedError extends Error {
  override readonly name = 'StoreRefusedError';
}

/**
 * The durable log of changes the sync server serves, shared by every server instance that uses
 * the same storage. Implementations promise:
 * - `append` resolves only once the record is durable, with its LSN; records get increasing LSNs
 *   in the order they became durable (their commit order), and this instance's listeners see each
 *   durable record once, in LSN order, before the `append` that wrote it resolves, whichever
 *   instance wrote it;
 * - an operation id is applied at most once, also across restarts, across instances and while the
 *   first append of it is still in flight;
 * - reads see every record that a listener has already been told about;
 * - a store that is temporarily unavailable refuses `append` with {@link StoreUnavailableError}
 *   and makes reads wait until it is back;
 * - a write the store can never hold is refused with {@link StoreRefusedError} (final);
 * - once a write cannot be made durable and the store cannot know what it holds (a disk error),
 *   it has failed for good: `failure` is set, the failure listeners are called once, and every
 *   later `append` is refused.
 */
/** What a client's appends share so that they commit in their order; see `SyncStore.append`. */
export type WriteSequence = object;

export interface SyncStore {
  /** LSN of the last record this instance's listeners were told about; `0/0` before any. */
  readonly head: LSN;
  readonly headPosition: bigint;
  /**
   * The position of the last durable record of the shared log, at least `headPosition`: another
   * instance may have written records this one has not announced yet. Every record up to it can
   * be read with `changesAfter`.
   */
  latestPosition(): Promise<bigint>;
  /**
   * Appends one record. Appends given the same `sequence` (one client's connection: any object,
   * compared by identity) commit in the order `append` was called, so that one client's writes
   * never overtake each other; one behind a write the store could not take now
   * (`StoreUnavailableError`) is refused the same way, untried. A patch edit is merged into the
   * entity's value as the records before it in LSN order left it, and recorded as an `update`
   * with the whole merged value.
   */
  append(edits: readonly Edit[], operationId?: string, sequence?: WriteSequence, options?: AppendOptions): Promise<AppendResult>;
  /**
   * The records after position `after`, in LSN order, bounded by `options`: one page, read from
   * storage. Throws {@link LogCompactedError} as `options.floor` says, checked in the same view of
   * the log as the page is read in.
   */
  changesAfter(after: bigint, options: ReadOptions): Promise<StoredRecord[]>;
  /**
   * How many changes the records in (`after`, `until`] hold; with `scopes`, about how many of them
   * touch those scopes (for progress only).
   */
  countChangesAfter(after: bigint, until: bigint, scopes?: readonly string[]): Promise<number>;
  /** One entity's current value and scope; undefined when it does not exist. */
  entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined>;
  /** One page of the current entities, in an order of the store's choosing that `next` follows. */
  entities(page: PageOptions): Promise<EntityPage>;
  stats(): Promise<StoreStats>;
  /** Calls `listener` with every record that becomes durable from now on. Returns unsubscribe. */
  subscribe(listener: (record: StoredRecord) => void): () => void;
  /** The error that made the store fail for good; undefined while it works. */
  readonly failure: Error | undefined;
  /** Calls `listener` once if the store fails for good (not if it had failed already). Returns unsubscribe. */
  onFailure(listener: (error: Error) => void): () => void;
  /**
   * Calls `listener` with an error when the store becomes temporarily unavailable and with
   * undefined when it is back. Returns unsubscribe. A store that is never unavailable never calls it.
   */
  onAvailability(listener: (unavailable: Error | undefined) => void): () => void;
  /**
   * Keeps, at or below the horizon, only the latest change of each entity, and the deletes and
   * moves out of a scope that are younger than the store's tombstone retention; drops the rest and
   * the space it took. Operation ids stay applied. One at a time; appends and reads go on meanwhile.
   */
  compact(options?: CompactOptions): Promise<CompactionReport>;
  /** The highest LSN of a delete or move that compaction dropped (0 when none): a catch-up from below it could miss one. */
  compactionFloor(): Promise<bigint>;
  /** Resolves once every append made so far has settled. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
