import { join } from 'node:path';
import type { Change } from '../src/protocol/change.ts';
import { formatLSN, type LSN } from '../src/protocol/lsn.ts';
import { AppendLog, type OpenLogFile } from './append-log.ts';
import { entityKey, resolveEdits, type Edit } from './edit.ts';
import { decodeEntry, encodeEntry } from './log-codec.ts';
import type {
  AppendResult,
  Entity,
  EntitySnapshot,
  ReadOptions,
  StoreStats,
  StoredRecord,
  SyncStore,
} from './sync-store.ts';

const LOG_FILE = 'changes.log';

export interface FileStoreOptions {
  /** Opens the log file for reading and writing; default `fs.promises.open(path, 'r+')`. */
  openFile?: OpenLogFile;
}

export interface OpenStoreResult {
  store: FileSyncStore;
  /** Bytes of a torn last line that were cut away on open. */
  truncatedBytes: number;
}

/**
 * A {@link SyncStore} kept in one append-only file of JSON lines in a data directory. A record's
 * LSN is the byte offset just after its line, so the first record's LSN is above `0/0`. On open
 * the file is read back whole: records, entities and applied operation ids live in memory.
 */
export class FileSyncStore implements SyncStore {
  readonly #log: AppendLog;
  readonly #records: StoredRecord[] = [];
  /** `#changeTotals[i]` = changes in records 0..i, for counting a range in O(log n). */
  readonly #changeTotals: number[] = [];
  readonly #entities = new Map<string, Entity>();
  /** Entities written by appends not yet durable: their value once those are, and how many. */
  readonly #pending = new Map<string, { value: unknown; appends: number }>();
  readonly #applied = new Map<string, bigint>();
  readonly #inFlight = new Map<string, Promise<AppendResult>>();
  readonly #listeners = new Set<(record: StoredRecord) => void>();
  readonly #failureListeners = new Set<(error: Error) => void>();
  #failure: Error | undefined;
  #headPosition = 0n;
  #closed = false;

  private constructor(log: AppendLog) {
    this.#log = log;
  }

  static async open(dir: string, options: FileStoreOptions = {}): Promise<OpenStoreResult> {
    const path = join(dir, LOG_FILE);
    const { log, lines, truncatedBytes } = await AppendLog.open(path, options.openFile);
    const store = new FileSyncStore(log);
    try {
      for (const line of lines) {
        const entry = decodeEntry(line.text);
        if (typeof entry === 'string') {
          throw new Error(`corrupt record in ${path} ending at byte ${line.end}: ${entry}`);
        }
        store.#commit(recordAt(BigInt(line.end), entry.changes, entry.operationId));
      }
    } catch (error) {
      await log.close();
      throw error;
    }
    return { store, truncatedBytes };
  }

  get head(): LSN {
    return formatLSN(this.#headPosition);
  }

  get headPosition(): bigint {
    return this.#headPosition;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  // Records take their place in the log in call order, so every caller's writes stay in order, and
  // a patch is merged into the value every earlier append (durable or not) leaves.
  append(edits: readonly Edit[], operationId?: string): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    if (edits.length === 0) return Promise.reject(new Error('a record needs at least one change'));
    if (operationId !== undefined) {
      const position = this.#applied.get(operationId);
      if (position !== undefined) {
        return Promise.resolve({ lsn: formatLSN(position), position, duplicate: true });
      }
      const first = this.#inFlight.get(operationId);
      if (first) return first.then((result) => ({ ...result, duplicate: true }));
    }
    if (this.#failure) return Promise.reject(unavailable(this.#failure));
    let written: { end: number; durable: Promise<void> };
    let changes: Change[];
    try {
      changes = resolveEdits(edits, (entityType, entityId) => this.#latestValue(entityKey(entityType, entityId)));
      written = this.#log.append(encodeEntry(changes, operationId));
    } catch (error) {
      const failure = this.#log.failure;
      if (failure) {
        this.#fail(failure);
        return Promise.reject(unavailable(failure));
      }
      return Promise.reject(error);
    }
    const record = recordAt(BigInt(written.end), changes, operationId);
    this.#holdPending(changes);
    const result = written.durable.then(
      (): AppendResult => {
        this.#releasePending(changes);
        this.#commit(record);
        return { lsn: record.lsn, position: record.position, duplicate: false };
      },
      (error: unknown): never => {
        const failure = error instanceof Error ? error : new Error(String(error));
        this.#fail(failure);
        throw unavailable(failure);
      },
    );
    if (operationId !== undefined) {
      this.#inFlight.set(operationId, result);
      const forget = () => this.#inFlight.delete(operationId);
      result.then(forget, forget);
    }
    return result;
  }

  async changesAfter(after: bigint, { until, maxChanges }: ReadOptions): Promise<StoredRecord[]> {
    const out: StoredRecord[] = [];
    let count = 0;
    for (let i = this.#firstAfter(after); i < this.#records.length; i += 1) {
      const record = this.#records[i]!;
      if (record.position > until) break;
      if (out.length > 0 && count + record.changes.length > maxChanges) break;
      out.push(record);
      count += record.changes.length;
    }
    return out;
  }

  async countChangesAfter(after: bigint, until: bigint): Promise<number> {
    const first = this.#firstAfter(after);
    const end = this.#firstAfter(until);
    if (end <= first) return 0;
    const before = first === 0 ? 0 : this.#changeTotals[first - 1]!;
    return this.#changeTotals[end - 1]! - before;
  }

  async latestPosition(): Promise<bigint> {
    return this.#headPosition;
  }

  async entities(): Promise<EntitySnapshot> {
    return { lsn: this.head, entities: [...this.#entities.values()] };
  }

  async stats(): Promise<StoreStats> {
    return {
      lsn: this.head,
      records: this.#records.length,
      changes: this.#changeTotals.at(-1) ?? 0,
      entities: this.#entities.size,
      operationsApplied: this.#applied.size,
    };
  }

  subscribe(listener: (record: StoredRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onFailure(listener: (error: Error) => void): () => void {
    this.#failureListeners.add(listener);
    return () => this.#failureListeners.delete(listener);
  }

  /** A file on a local disk has no "temporarily unavailable": it works or has failed for good. */
  onAvailability(): () => void {
    return () => {};
  }

  async flush(): Promise<void> {
    await this.#log.flush();
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#log.close();
    this.#listeners.clear();
    this.#failureListeners.clear();
  }

  /** The value of an entity once every append made so far is durable; undefined when absent. */
  #latestValue(key: string): unknown {
    const pending = this.#pending.get(key);
    return pending ? pending.value : this.#entities.get(key)?.data;
  }

  #holdPending(changes: readonly Change[]): void {
    for (const change of changes) {
      const key = entityKey(change.entityType, change.entityId);
      const appends = (this.#pending.get(key)?.appends ?? 0) + 1;
      this.#pending.set(key, { value: change.type === 'delete' ? undefined : change.data, appends });
    }
  }

  #releasePending(changes: readonly Change[]): void {
    for (const change of changes) {
      const key = entityKey(change.entityType, change.entityId);
      const pending = this.#pending.get(key);
      if (pending && --pending.appends === 0) this.#pending.delete(key);
    }
  }

  /** Records the first write failure and tells the failure listeners, once. */
  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const listener of this.#failureListeners) {
      try {
        listener(error);
      } catch (cause) {
        process.emitWarning(`sync store failure listener failed: ${String(cause)}`);
      }
    }
  }

  /** Index of the first record whose position is greater than `after`. */
  #firstAfter(after: bigint): number {
    let low = 0;
    let high = this.#records.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#records[mid]!.position > after) high = mid;
      else low = mid + 1;
    }
    return low;
  }

  #commit(record: StoredRecord): void {
    if (record.position <= this.#headPosition) {
      throw new Error(`record ${record.lsn} is not after the head ${this.head}`);
    }
    this.#records.push(record);
    this.#changeTotals.push((this.#changeTotals.at(-1) ?? 0) + record.changes.length);
    this.#headPosition = record.position;
    for (const change of record.changes) applyChange(this.#entities, change);
    if (record.operationId !== undefined) this.#applied.set(record.operationId, record.position);
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        process.emitWarning(`sync store listener failed: ${String(error)}`);
      }
    }
  }
}

function unavailable(cause: Error): Error {
  return new Error(`store unavailable: ${cause.message}`, { cause });
}

function recordAt(position: bigint, changes: Change[], operationId?: string): StoredRecord {
  const record: StoredRecord = { lsn: formatLSN(position), position, changes };
  if (operationId !== undefined) record.operationId = operationId;
  return record;
}

function applyChange(entities: Map<string, Entity>, change: Change): void {
  const key = entityKey(change.entityType, change.entityId);
  if (change.type === 'delete') entities.delete(key);
  else entities.set(key, { entityType: change.entityType, entityId: change.entityId, data: change.data });
}
