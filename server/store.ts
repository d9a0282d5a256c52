import type { Change } from '../src/protocol/change.ts';
import { asError, errorMessage } from '../src/protocol/errors.ts';
import { formatLSN, type LSN } from '../src/protocol/lsn.ts';
import { AppendLog } from './append-log.ts';
import type { DataDirLock } from './data-dir-lock.ts';
import { entityKey, resolveEdits, type Edit } from './edit.ts';
import { IndexedLog } from './indexed-log.ts';
import { MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from './log-format.ts';
import { openLog, type LogOpenOptions, type OpenReport } from './log-open.ts';
import { LogRewrite, type CompactionStep } from './log-rewrite.ts';
import { LogTurns } from './log-turns.ts';
import { PendingWrites } from './pending-writes.ts';
import { encodeRecord, type RecordIndex } from './record-codec.ts';
import { scopeChanges, type ScopeOf } from './scopes.ts';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  StoreRefusedError,
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
} from './sync-store.ts';

export interface FileStoreOptions extends LogOpenOptions {
  /** Names each entity's scope when a write is resolved; without it every entity is in the default scope. */
  scopeOf?: ScopeOf;
  /** How long compaction keeps deletes and moves out of a scope below its horizon; default 30 days. */
  tombstoneRetentionMs?: number;
  /**
   * Called at the steps of a compaction where a crash matters (the new file written and synced;
   * it replaced the log), and awaited: crash tests stop the process there.
   */
  onCompactionStep?: (step: CompactionStep) => Promise<void> | void;
}

export interface OpenStoreResult {
  store: FileSyncStore;
  /** Bytes of a torn tail (an interrupted write) that were cut away on open. */
  truncatedBytes: number;
  /** What opening found and did (a torn tail cut, damage cut on request, a log imported), for the operator. */
  report: OpenReport;
}

/**
 * A {@link SyncStore} in one checksummed, append-only file in a data directory (see log-format.ts),
 * with an exclusive lock on the directory. A record's LSN is its end offset plus the file's base.
 * On open the file is read once, as a stream, to check every record and build the in-memory index
 * (log-index.ts); the data itself stays on disk and is read back in pages (indexed-log.ts).
 */
export class FileSyncStore implements SyncStore {
  #indexed: IndexedLog;
  #log: AppendLog;
  readonly #dir: string;
  readonly #options: FileStoreOptions;
  /** Appends are prepared one after another, in call order (a patch reads what came before); reads and compaction take turns with them. */
  readonly #turns = new LogTurns();
  #compacting: Promise<CompactionReport> | undefined;
  readonly #lock: DataDirLock;
  readonly #pending = new PendingWrites();
  readonly #scopeOf: ScopeOf | undefined;
  readonly #inFlight = new Map<string, Promise<AppendResult>>();
  readonly #listeners = new Set<(record: StoredRecord) => void>();
  readonly #failureListeners = new Set<(error: Error) => void>();
  #failure: Error | undefined;
  #closed = false;

  private constructor(dir: string, indexed: IndexedLog, lock: DataDirLock, options: FileStoreOptions) {
    this.#dir = dir;
    this.#options = options;
    this.#scopeOf = options.scopeOf;
    this.#indexed = indexed;
    this.#lock = lock;
    this.#log = new AppendLog(indexed.file, indexed.index.end);
  }

  /** Opens (creating it if needed) the store in `dir`; throws, saying why and what to do, when it cannot. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<OpenStoreResult> {
    const { file, index, lock, report } = await openLog(dir, options);
    return { store: new FileSyncStore(dir, new IndexedLog(file, index), lock, options), truncatedBytes: report.truncatedBytes, report };
  }

  get head(): LSN {
    return formatLSN(this.#indexed.index.head);
  }

  get headPosition(): bigint {
    return this.#indexed.index.head;
  }

  get failure(): Error | undefined {
    return this.#failure;
  }

  append(edits: readonly Edit[], operationId?: string, _sequence?: unknown, options: AppendOptions = {}): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    if (edits.length === 0) return Promise.reject(new Error('a record needs at least one change'));
    if (operationId !== undefined) {
      const first = this.#inFlight.get(operationId);
      if (first) return first.then((result) => ({ ...result, duplicate: true }));
    }
    const prepared = this.#turns.next(() => this.#prepare(edits, operationId, options));
    const result = prepared.then((step) => step.durable);
    if (operationId !== undefined) {
      this.#inFlight.set(operationId, result);
      const forget = () => this.#inFlight.delete(operationId);
      result.then(forget, forget);
    }
    return result;
  }

  changesAfter(after: bigint, options: ReadOptions): Promise<StoredRecord[]> {
    return this.#turns.read(() => this.#indexed.changesAfter(after, options));
  }

  countChangesAfter(after: bigint, until: bigint, scopes?: readonly string[]): Promise<number> {
    return this.#turns.read(() => this.#indexed.countChangesAfter(after, until, scopes));
  }

  async latestPosition(): Promise<bigint> {
    return this.#indexed.index.head;
  }

  entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined> {
    return this.#turns.read(() => this.#entity(entityType, entityId));
  }

  async #entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined> {
    const key = entityKey(entityType, entityId);
    const pending = this.#pending.get(key);
    if (pending) return pending.value === undefined ? undefined : { entityType, entityId, data: pending.value, scope: pending.scope ?? this.#indexed.index.entityScope(key) };
    const stored = await this.#indexed.storedValue(key);
    return stored && { entityType, entityId, data: stored.value, scope: this.#indexed.index.entityScope(key) };
  }

  entities(page: PageOptions): Promise<EntityPage> {
    return this.#turns.read(() => this.#indexed.entities(page));
  }

  compact(options: CompactOptions = {}): Promise<CompactionReport> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    if (this.#compacting) return this.#compacting.then(() => this.compact(options));
    const compacting = this.#compact(options).finally(() => {
      if (this.#compacting === compacting) this.#compacting = undefined;
    });
    return (this.#compacting = compacting);
  }

  async compactionFloor(): Promise<bigint> {
    return this.#indexed.index.floor;
  }

  async #compact({ horizon, now = Date.now() }: CompactOptions): Promise<CompactionReport> {
    const source = this.#indexed;
    const { index } = source;
    const target = horizon === undefined || horizon > index.head ? index.head : horizon;
    const horizonEnd = index.offset(target);
    const report = { horizon: formatLSN(target), changesBefore: index.changes, removalsDropped: 0 };
    const unchanged = (): CompactionReport => ({ ...report, floor: formatLSN(index.floor), changesAfter: index.changes, compacted: false });
    if (horizonEnd <= index.readableStart) return unchanged();
    const rewrite = await LogRewrite.begin(this.#dir);
    try {
      const retention = this.#options.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS;
      const written = await rewrite.write(source, horizonEnd, now - retention);
      if (!written) return unchanged();
      const swapped = await this.#turns.replace(() => this.#settleAppends(), async () => {
        // Appends made while the file was written follow, at the same offsets from its end.
        await rewrite.catchUp(source);
        await rewrite.install(this.#options.onCompactionStep);
        const old = this.#log;
        this.#indexed = new IndexedLog(rewrite.file, rewrite.index);
        this.#log = new AppendLog(rewrite.file, rewrite.index.end);
        await old.close();
        return rewrite.index;
      });
      return { ...report, floor: formatLSN(swapped.floor), changesAfter: swapped.changes, removalsDropped: written.removalsDropped, compacted: true };
    } catch (error) {
      if (rewrite.installed) {
        // The log on disk is the new one, this process still writes the old: nothing more may be acknowledged.
        this.#fail(asError(error));
      }
      throw error;
    } finally {
      await rewrite.discard();
    }
  }

  /** Waits until every append written so far is durable; throws the log's write failure, if any. */
  async #settleAppends(): Promise<void> {
    await this.#log.flush();
    if (this.#log.failure) throw this.#log.failure;
  }

  async stats(): Promise<StoreStats> {
    const { index } = this.#indexed;
    return {
      lsn: this.head,
      records: index.records,
      changes: index.changes,
      entities: index.entityCount,
      operationsApplied: index.operationCount,
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
    await this.#turns.idle();
    await this.#log.flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#compacting?.catch(() => {});
    await this.#turns.idle();
    await this.#log.close();
    await this.#lock.release();
    this.#listeners.clear();
    this.#failureListeners.clear();
  }

  /** Checks, resolves and queues one append; its `durable` settles when it is on disk. */
  async #prepare(edits: readonly Edit[], operationId: string | undefined, options: AppendOptions): Promise<{ durable: Promise<AppendResult> }> {
    if (operationId !== undefined) {
      const found = await this.#indexed.findOperation(operationId);
      if (found !== undefined) {
        const duplicate: AppendResult = { lsn: formatLSN(found.position), position: found.position, duplicate: true };
        if (found.fingerprint !== undefined) duplicate.fingerprint = found.fingerprint;
        return { durable: Promise.resolve(duplicate) };
      }
    }
    if (this.#failure) throw unavailable(this.#failure);
    if (this.#closed) throw new Error('store is closed');
    const values = await this.#valuesOf(edits);
    const changes = resolveEdits(edits, (entityType, entityId) => values.get(entityKey(entityType, entityId)));
    // Checked here, in write order, against the scopes as the writes before this one left them.
    const scopes = scopeChanges(changes, (key) => this.#scopeNow(key), this.#scopeOf, options.allowedScopes);
    const bytes = encodeRecord(changes, operationId, scopes, operationId === undefined ? undefined : options.fingerprint);
    if (bytes.length - RECORD_HEADER_BYTES > MAX_RECORD_BYTES) {
      throw new StoreRefusedError(`the record would be ${bytes.length} bytes, over the ${MAX_RECORD_BYTES}-byte limit of the log`);
    }
    let written: { end: number; durable: Promise<void> };
    try {
      written = this.#log.append(bytes);
    } catch (error) {
      const failure = this.#log.failure;
      if (!failure) throw error;
      this.#fail(failure);
      throw unavailable(failure);
    }
    this.#pending.hold(changes, scopes);
    const start = written.end - bytes.length;
    const index: RecordIndex = { keys: changes.map((change) => [change.entityType, change.entityId, change.type === 'update']) };
    if (operationId !== undefined) index.operationId = operationId;
    if (scopes.some((scope) => scope.scope !== '' || scope.before !== undefined)) index.scopes = scopes;
    const durable = written.durable.then(
      (): AppendResult => {
        this.#pending.release(changes);
        const record = this.#commit(start, written.end, index, changes);
        return { lsn: record.lsn, position: record.position, duplicate: false };
      },
      (error: unknown): never => {
        const failure = asError(error);
        this.#fail(failure);
        throw unavailable(failure);
      },
    );
    return { durable };
  }

  /** An entity's scope as the appends so far leave it (undefined: it does not exist). */
  #scopeNow(key: string): string | undefined {
    const pending = this.#pending.get(key);
    if (pending) return pending.value === undefined ? undefined : pending.scope;
    const { index } = this.#indexed;
    return index.entityRecord(key) === undefined ? undefined : index.entityScope(key);
  }

  /** The current values of the entities the patches among `edits` touch, counting appends not yet durable. */
  async #valuesOf(edits: readonly Edit[]): Promise<Map<string, unknown>> {
    const values = new Map<string, unknown>();
    for (const edit of edits) {
      if (edit.type !== 'patch') continue;
      const key = entityKey(edit.entityType, edit.entityId);
      const pending = this.#pending.get(key);
      if (pending) {
        values.set(key, pending.value);
        continue;
      }
      const stored = await this.#indexed.storedValue(key);
      if (stored) values.set(key, stored.value);
    }
    return values;
  }

  #commit(start: number, end: number, index: RecordIndex, changes: Change[]): StoredRecord {
    const position = this.#indexed.add(start, end, index);
    const record: StoredRecord = { lsn: formatLSN(position), position, changes };
    if (index.operationId !== undefined) record.operationId = index.operationId;
    if (index.scopes !== undefined) record.scopes = index.scopes;
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        process.emitWarning(`sync store listener failed: ${errorMessage(error)}`);
      }
    }
    return record;
  }

  /** Records the first write failure and tells the failure listeners, once. */
  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const listener of this.#failureListeners) {
      try {
        listener(error);
      } catch (cause) {
        process.emitWarning(`sync store failure listener failed: ${errorMessage(cause)}`);
      }
    }
  }
}

function unavailable(cause: Error): Error {
  return new Error(`store unavailable: ${cause.message}`, { cause });
}
