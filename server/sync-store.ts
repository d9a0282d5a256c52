import type { Change } from '../src/protocol/change.ts';
import type { LSN } from '../src/protocol/lsn.ts';

/** One appended batch of changes; its LSN orders it in the log. */
export interface StoredRecord {
  lsn: LSN;
  /** The LSN as its 64-bit value, for comparisons. */
  position: bigint;
  changes: readonly Change[];
  /** The id of the client operation this record applied, if it came from one. */
  operationId?: string;
}

export interface AppendResult {
  lsn: LSN;
  position: bigint;
  /** True when the operation id had been applied before: nothing was appended. */
  duplicate: boolean;
}

/** The current value of one entity. */
export interface Entity {
  entityType: string;
  entityId: string;
  data: unknown;
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
}

/**
 * The durable log of changes the sync server serves. Implementations promise:
 * - `append` resolves only once the record is durable; records get increasing LSNs in the order
 *   `append` was called, and listeners see each durable record once, in LSN order, before the
 *   `append` that wrote it resolves;
 * - an operation id is applied at most once, also across restarts and while the first append of
 *   it is still in flight;
 * - reads see every record that a listener has already been told about;
 * - once a write cannot be made durable (a disk error), the store has failed for good: `failure`
 *   is set, the failure listeners are called once, and every later `append` is refused.
 */
export interface SyncStore {
  /** LSN of the last durable record; `0/0` when the log is empty. */
  readonly head: LSN;
  readonly headPosition: bigint;
  append(changes: readonly Change[], operationId?: string): Promise<AppendResult>;
  /** The records after position `after`, in LSN order, bounded by `options`. */
  changesAfter(after: bigint, options: ReadOptions): Promise<StoredRecord[]>;
  /** How many changes the records in (`after`, `until`] hold. */
  countChangesAfter(after: bigint, until: bigint): Promise<number>;
  entities(): Promise<Entity[]>;
  stats(): Promise<StoreStats>;
  /** Calls `listener` with every record that becomes durable from now on. Returns unsubscribe. */
  subscribe(listener: (record: StoredRecord) => void): () => void;
  /** The error that made the store fail for good; undefined while it works. */
  readonly failure: Error | undefined;
  /** Calls `listener` once if the store fails for good (not if it had failed already). Returns unsubscribe. */
  onFailure(listener: (error: Error) => void): () => void;
  /** Resolves once every append made so far has settled. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
