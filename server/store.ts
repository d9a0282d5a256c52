import type { Change } from '../src/protocol/change.ts';
import { formatLSN, type LSN } from '../src/protocol/lsn.ts';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AppendLog, syncDirectory, type LogFile } from './append-log.ts';
import { copyRecords, writeCompacted, Writer } from './log-compaction.ts';
import { scanLog } from './log-scan.ts';
import type { DataDirLock } from './data-dir-lock.ts';
import { entityKey, resolveEdits, type Edit } from './edit.ts';
import { entityPage } from './entity-pages.ts';
import { LogIndex } from './log-index.ts';
import { MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from './log-format.ts';
import { CorruptRecordError, readFrames, walkHeaders, type Frame } from './log-reader.ts';
import { COMPACTING_SUFFIX, indexLog, LOG_FILE, openLog, type LogOpenOptions, type OpenReport } from './log-open.ts';
import { ChunkCursor, readFrame } from './log-reader.ts';
import { decodeChanges, decodeIndex, encodeRecord, type RecordIndex } from './record-codec.ts';
import { scopeChanges, type ChangeScope, type ScopeOf } from './scopes.ts';
import {
  DEFAULT_TOMBSTONE_RETENTION_MS,
  LogCompactedError,
  missedRemovals,
  PAGE_BYTES,
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
  onCompactionStep?: (step: 'written' | 'replaced') => Promise<void> | void;
}

/** Bytes read at a time while a scoped catch-up reads records scattered over the log. */
const SCATTERED_READ_BYTES = 64 * 1024;

export interface OpenStoreResult {
  store: FileSyncStore;
  /** Bytes of a torn tail (an interrupted write) that were cut away on open. */
  truncatedBytes: number;
  /** What opening found and did (a torn tail cut, damage cut on request, a log imported), for the operator. */
  report: OpenReport;
}

/** Boundaries remembered as known (ends of records just read), so most reads need no walk. */
const KNOWN_BOUNDARIES = 4096;

/**
 * A {@link SyncStore} in one checksummed, append-only file in a data directory (see log-format.ts),
 * with an exclusive lock on the directory. A record's LSN is its end offset plus the file's base.
 * On open the file is read once, as a stream, to check every record and build the in-memory index
 * (log-index.ts); the data itself stays on disk and is read back in pages.
 */
export class FileSyncStore implements SyncStore {
  #file: LogFile;
  #log: AppendLog;
  #index: LogIndex;
  readonly #dir: string;
  readonly #options: FileStoreOptions;
  /** Reads under way; a compaction replaces the file only when there are none. */
  #readers = 0;
  #readersGone: (() => void) | undefined;
  /** Set while a compaction replaces the file: reads wait for it. */
  #replacing: Promise<void> | undefined;
  #compacting: Promise<CompactionReport> | undefined;
  readonly #lock: DataDirLock;
  /** Entities written by appends not yet durable: their value and scope once those are, and how many. */
  readonly #pending = new Map<string, { value: unknown; scope: string | undefined; appends: number }>();
  readonly #scopeOf: ScopeOf | undefined;
  readonly #inFlight = new Map<string, Promise<AppendResult>>();
  readonly #listeners = new Set<(record: StoredRecord) => void>();
  readonly #failureListeners = new Set<(error: Error) => void>();
  readonly #boundaries = new Set<number>();
  /** Appends are prepared one after another, in call order (a patch reads what came before). */
  #preparing: Promise<unknown> = Promise.resolve();
  #failure: Error | undefined;
  #closed = false;

  private constructor(dir: string, file: LogFile, index: LogIndex, lock: DataDirLock, options: FileStoreOptions) {
    this.#dir = dir;
    this.#options = options;
    this.#scopeOf = options.scopeOf;
    this.#file = file;
    this.#index = index;
    this.#lock = lock;
    this.#log = new AppendLog(file, index.end);
  }

  /** Opens (creating it if needed) the store in `dir`; throws, saying why and what to do, when it cannot. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<OpenStoreResult> {
    const { file, index, lock, report } = await openLog(dir, options);
    return { store: new FileSyncStore(dir, file, index, lock, options), truncatedBytes: report.truncatedBytes, report };
  }

  get head(): LSN {
    return formatLSN(this.#index.head);
  }

  get headPosition(): bigint {
    return this.#index.head;
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
    const prepared = this.#preparing.then(() => this.#prepare(edits, operationId, options));
    this.#preparing = prepared.catch(() => {});
    const result = prepared.then((step) => step.durable);
    if (operationId !== undefined) {
      this.#inFlight.set(operationId, result);
      const forget = () => this.#inFlight.delete(operationId);
      result.then(forget, forget);
    }
    return result;
  }

  changesAfter(after: bigint, options: ReadOptions): Promise<StoredRecord[]> {
    return this.#reading(() => this.#changesAfter(after, options));
  }

  async #changesAfter(after: bigint, { until, maxChanges, maxBytes = PAGE_BYTES, scopes, floor }: ReadOptions): Promise<StoredRecord[]> {
    if (missedRemovals(after, this.#index.floor, floor)) throw new LogCompactedError(after, this.#index.floor);
    const from = await this.#boundaryAfter(after);
    const to = this.#index.offset(until);
    if (from >= to) return [];
    if (scopes !== undefined) return this.#scopedAfter(scopes, from, to, maxChanges, maxBytes);
    const frames = await readFrames(this.#file, from, to, maxBytes, maxChanges);
    const last = frames.at(-1);
    if (last) this.#remember(last.end);
    return frames.map((frame) => this.#decode(frame));
  }

  countChangesAfter(after: bigint, until: bigint, scopes?: readonly string[]): Promise<number> {
    return this.#reading(() => this.#countChangesAfter(after, until, scopes));
  }

  async #countChangesAfter(after: bigint, until: bigint, scopes?: readonly string[]): Promise<number> {
    const from = await this.#boundaryAfter(after);
    const to = await this.#boundaryAfter(until);
    if (scopes !== undefined) return to <= from ? 0 : this.#index.scopedRecordCount(scopes, from, to);
    return to <= from ? 0 : (await this.#changesBefore(to)) - (await this.#changesBefore(from));
  }

  async latestPosition(): Promise<bigint> {
    return this.#index.head;
  }

  entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined> {
    return this.#reading(() => this.#entity(entityType, entityId));
  }

  async #entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined> {
    const key = entityKey(entityType, entityId);
    const pending = this.#pending.get(key);
    if (pending) return pending.value === undefined ? undefined : { entityType, entityId, data: pending.value, scope: pending.scope ?? this.#index.entityScope(key) };
    const stored = await this.#storedValue(key);
    return stored && { entityType, entityId, data: stored.value, scope: this.#index.entityScope(key) };
  }

  entities(page: PageOptions): Promise<EntityPage> {
    return this.#reading(() => entityPage(page, {
      file: this.#file,
      index: this.#index,
      head: this.head,
      decode: (frame) => this.#decode(frame),
    }));
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
    return this.#index.floor;
  }

  async #compact({ horizon, now = Date.now() }: CompactOptions): Promise<CompactionReport> {
    const index = this.#index;
    const file = this.#file;
    const target = horizon === undefined || horizon > index.head ? index.head : horizon;
    const horizonEnd = index.offset(target);
    const report = { horizon: formatLSN(target), changesBefore: index.changes, removalsDropped: 0 };
    const unchanged = (): CompactionReport => ({ ...report, floor: formatLSN(index.floor), changesAfter: index.changes, compacted: false });
    if (horizonEnd <= index.readableStart) return unchanged();
    const path = join(this.#dir, LOG_FILE);
    const temporary = `${path}${COMPACTING_SUFFIX}`;
    const out = await open(temporary, 'w+');
    let replaced = false;
    try {
      const retention = this.#options.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS;
      const written = await writeCompacted(file, index, out, horizonEnd, index.end, now - retention);
      if (!written) return unchanged();
      const next = await indexLog(out, temporary, written.end);
      if (next.damage) throw new Error(`the compacted log does not read back: ${next.damage.reason}`);
      const swapped = await this.#replaceWith(async () => {
        // Appends made while the file was written follow, at the same offsets from its end.
        const writer = new Writer(out, written.end);
        const copied = this.#index.end;
        await copyRecords(file, written.copiedTo, copied, writer);
        const tail = await scanLog(out, written.end, writer.end, (frame) => {
          const recordIndex = decodeIndex(frame.index, frame.header.changeCount);
          if (typeof recordIndex === 'string') return recordIndex;
          next.index.add(frame.start, frame.end, recordIndex);
          return undefined;
        });
        if (tail.damage) throw new Error(`the compacted log does not read back: ${tail.damage.reason}`);
        await out.datasync();
        await this.#options.onCompactionStep?.('written');
        await rename(temporary, path);
        replaced = true;
        await syncDirectory(this.#dir);
        await this.#options.onCompactionStep?.('replaced');
        const old = this.#log;
        this.#file = out;
        this.#index = next.index;
        this.#log = new AppendLog(out, next.index.end);
        this.#boundaries.clear();
        await old.close();
        return next.index;
      });
      return { ...report, floor: formatLSN(swapped.floor), changesAfter: swapped.changes, removalsDropped: written.removalsDropped, compacted: true };
    } catch (error) {
      if (replaced) {
        // The log on disk is the new one, this process still writes the old: nothing more may be acknowledged.
        this.#fail(error instanceof Error ? error : new Error(String(error)));
      }
      throw error;
    } finally {
      if (!replaced) {
        await out.close();
        await rm(temporary, { force: true });
      }
    }
  }

  /** Runs `replace` once no append is being prepared or written and no read is under way, holding both back meanwhile. */
  async #replaceWith<T>(replace: () => Promise<T>): Promise<T> {
    let done!: () => void;
    const replacing = new Promise<void>((resolve) => (done = resolve));
    const turn = this.#preparing.then(async () => {
      this.#replacing = replacing;
      try {
        await this.#log.flush();
        if (this.#log.failure) throw this.#log.failure;
        if (this.#readers > 0) await new Promise<void>((resolve) => (this.#readersGone = resolve));
        return await replace();
      } finally {
        this.#replacing = undefined;
        done();
      }
    });
    this.#preparing = turn.catch(() => {});
    return turn;
  }

  /** Runs a read of the file and its index, after any replacement under way and before the next one. */
  async #reading<T>(read: () => Promise<T>): Promise<T> {
    while (this.#replacing) await this.#replacing;
    this.#readers += 1;
    try {
      return await read();
    } finally {
      this.#readers -= 1;
      if (this.#readers === 0 && this.#readersGone) {
        this.#readersGone();
        this.#readersGone = undefined;
      }
    }
  }

  async stats(): Promise<StoreStats> {
    return {
      lsn: this.head,
      records: this.#index.records,
      changes: this.#index.changes,
      entities: this.#index.entityCount,
      operationsApplied: this.#index.operationCount,
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
    await this.#preparing;
    await this.#log.flush();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#compacting?.catch(() => {});
    await this.#preparing;
    await this.#log.close();
    await this.#lock.release();
    this.#listeners.clear();
    this.#failureListeners.clear();
  }

  /** Checks, resolves and queues one append; its `durable` settles when it is on disk. */
  async #prepare(edits: readonly Edit[], operationId: string | undefined, options: AppendOptions): Promise<{ durable: Promise<AppendResult> }> {
    if (operationId !== undefined) {
      const found = await this.#findOperation(operationId);
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
    this.#holdPending(changes, scopes);
    const start = written.end - bytes.length;
    const index: RecordIndex = { keys: changes.map((change) => [change.entityType, change.entityId, change.type === 'update']) };
    if (operationId !== undefined) index.operationId = operationId;
    if (scopes.some((scope) => scope.scope !== '' || scope.before !== undefined)) index.scopes = scopes;
    const durable = written.durable.then(
      (): AppendResult => {
        this.#releasePending(changes);
        const record = this.#commit(start, written.end, index, changes);
        return { lsn: record.lsn, position: record.position, duplicate: false };
      },
      (error: unknown): never => {
        const failure = error instanceof Error ? error : new Error(String(error));
        this.#fail(failure);
        throw unavailable(failure);
      },
    );
    return { durable };
  }

  /** The LSN of the record that applied `operationId`, and the fingerprint it was kept with, if one did. */
  async #findOperation(operationId: string): Promise<{ position: bigint; fingerprint?: string } | undefined> {
    for (const start of this.#index.operationCandidates(operationId)) {
      const [frame] = await readFrames(this.#file, start, this.#index.end, 0);
      const index = frame && decodeIndexOrThrow(frame);
      if (frame && index?.operationId === operationId) {
        const position = this.#index.position(frame.end);
        return index.fingerprint === undefined ? { position } : { position, fingerprint: index.fingerprint };
      }
      const listed = index?.operations?.find((operation) => operation.id === operationId);
      if (listed) return listed.fingerprint === undefined ? { position: listed.position } : { position: listed.position, fingerprint: listed.fingerprint };
    }
    return undefined;
  }

  /** An entity's scope as the appends so far leave it (undefined: it does not exist). */
  #scopeNow(key: string): string | undefined {
    const pending = this.#pending.get(key);
    if (pending) return pending.value === undefined ? undefined : pending.scope;
    return this.#index.entityRecord(key) === undefined ? undefined : this.#index.entityScope(key);
  }

  /** Records in [from, to) that touch `scopes`, read one by one from where the scope index says. */
  async #scopedAfter(scopes: readonly string[], from: number, to: number, maxChanges: number, maxBytes: number): Promise<StoredRecord[]> {
    const records: StoredRecord[] = [];
    const cursor = new ChunkCursor(this.#file, SCATTERED_READ_BYTES);
    let changes = 0;
    let bytes = 0;
    for (const start of this.#index.scopedRecords(scopes, from, to, maxChanges)) {
      const frame = await readFrame(cursor, start, this.#index.end);
      if (!('header' in frame)) throw new CorruptRecordError(start, frame.problem);
      if (records.length > 0 && (changes + frame.header.changeCount > maxChanges || bytes >= maxBytes)) break;
      records.push(this.#decode(frame));
      changes += frame.header.changeCount;
      bytes += frame.end - frame.start;
      this.#remember(frame.end);
    }
    return records;
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
      const stored = await this.#storedValue(key);
      if (stored) values.set(key, stored.value);
    }
    return values;
  }

  /** An entity's durable value, read from the record holding its latest change. */
  async #storedValue(key: string): Promise<{ value: unknown } | undefined> {
    const start = this.#index.entityRecord(key);
    if (start === undefined) return undefined;
    const [frame] = await readFrames(this.#file, start, this.#index.end, 0);
    let found: { value: unknown } | undefined;
    for (const change of frame ? this.#decode(frame).changes : []) {
      if (entityKey(change.entityType, change.entityId) === key && change.type === 'update') found = { value: change.data };
    }
    return found;
  }

  #holdPending(changes: readonly Change[], scopes: readonly ChangeScope[]): void {
    for (const [i, change] of changes.entries()) {
      const key = entityKey(change.entityType, change.entityId);
      const appends = (this.#pending.get(key)?.appends ?? 0) + 1;
      const deleted = change.type === 'delete';
      this.#pending.set(key, { value: deleted ? undefined : change.data, scope: deleted ? undefined : scopes[i]!.scope, appends });
    }
  }

  #releasePending(changes: readonly Change[]): void {
    for (const change of changes) {
      const key = entityKey(change.entityType, change.entityId);
      const pending = this.#pending.get(key);
      if (pending && --pending.appends === 0) this.#pending.delete(key);
    }
  }

  #commit(start: number, end: number, index: RecordIndex, changes: Change[]): StoredRecord {
    this.#index.add(start, end, index);
    this.#remember(end);
    const position = this.#index.position(end);
    const record: StoredRecord = { lsn: formatLSN(position), position, changes };
    if (index.operationId !== undefined) record.operationId = index.operationId;
    if (index.scopes !== undefined) record.scopes = index.scopes;
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        process.emitWarning(`sync store listener failed: ${String(error)}`);
      }
    }
    return record;
  }

  #decode(frame: Frame): StoredRecord {
    return new LogRecord(frame, this.#index.position(frame.end));
  }

  /** The file offset of the first record whose LSN is above `position` (the end if none). */
  async #boundaryAfter(position: bigint): Promise<number> {
    const offset = this.#index.offset(position);
    if (offset >= this.#index.end || this.#boundaries.has(offset)) return offset;
    const { start } = this.#index.checkpointBefore(offset);
    for await (const record of walkHeaders(this.#file, start, this.#index.end)) {
      if (record.end > offset) return record.start;
    }
    return this.#index.end;
  }

  /** Changes in the records before the boundary `offset`. */
  async #changesBefore(offset: number): Promise<number> {
    if (offset >= this.#index.end) return this.#index.changes;
    const checkpoint = this.#index.checkpointBefore(offset);
    let changes = checkpoint.changesBefore;
    for await (const record of walkHeaders(this.#file, checkpoint.start, offset)) changes += record.changeCount;
    return changes;
  }

  #remember(boundary: number): void {
    if (this.#boundaries.size >= KNOWN_BOUNDARIES) this.#boundaries.clear();
    this.#boundaries.add(boundary);
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
}

function decodeIndexOrThrow(frame: Frame): RecordIndex {
  const index = decodeIndex(frame.index, frame.header.changeCount);
  if (typeof index === 'string') throw new CorruptRecordError(frame.start, index);
  return index;
}

/**
 * A record read from the log: its changes are parsed (and checked against its index) only when
 * asked for; a catch-up sends the body's JSON as it is, already checked by its checksum.
 */
class LogRecord implements StoredRecord {
  readonly lsn: LSN;
  readonly position: bigint;
  readonly changesJson: string;
  readonly #frame: Frame;
  #index: RecordIndex | undefined;
  #changes: Change[] | undefined;

  constructor(frame: Frame, position: bigint) {
    this.#frame = frame;
    this.position = position;
    this.lsn = formatLSN(position);
    this.changesJson = frame.body.toString('utf8');
  }

  get operationId(): string | undefined {
    return this.#recordIndex().operationId;
  }

  get scopes(): readonly ChangeScope[] | undefined {
    return this.#recordIndex().scopes;
  }

  get changes(): Change[] {
    if (this.#changes) return this.#changes;
    const changes = decodeChanges(this.#recordIndex(), this.changesJson);
    if (typeof changes === 'string') throw new CorruptRecordError(this.#frame.start, changes);
    return (this.#changes = changes);
  }

  #recordIndex(): RecordIndex {
    return (this.#index ??= decodeIndexOrThrow(this.#frame));
  }
}

function unavailable(cause: Error): Error {
  return new Error(`store unavailable: ${cause.message}`, { cause });
}
