import { entityKey } from './edit.ts';
import { HashIndex, hashText } from './hash-index.ts';
import { FILE_HEADER_BYTES } from './log-format.ts';
import type { RecordIndex } from './record-codec.ts';
import { DEFAULT_SCOPE } from './scopes.ts';

/** Bytes of log between two checkpoints: a read from an arbitrary boundary walks at most this far. */
const CHECKPOINT_BYTES = 64 * 1024;

/**
 * What the embedded store keeps in memory about its log, rebuilt from the records' indexes on
 * open: where each live entity's latest value lies, where each operation id was applied (by a
 * 53-bit hash, whatever the id's length), a sparse list of record boundaries with the changes
 * before each, and counts. Never the data itself.
 */
export class LogIndex {
  readonly base: bigint;
  /** Offset just after the last record. */
  end = FILE_HEADER_BYTES;
  records = 0;
  changes = 0;
  readonly #operations = new HashIndex();
  /** Entity key -> start of the record that holds its latest (update) change. */
  readonly #entities = new Map<string, number>();
  /** Start of a record -> how many entities it holds the latest value of (absent: none). */
  readonly #liveCount = new Map<number, number>();
  /** Starts of records holding some entity's latest value, ascending (with some that no longer do). */
  #liveStarts: number[] = [];
  readonly #checkpoints: { start: number; changesBefore: number }[] = [{ start: FILE_HEADER_BYTES, changesBefore: 0 }];
  /** Entity key -> its scope, for live entities outside the default scope. */
  readonly #entityScopes = new Map<string, string>();
  /** Scope -> starts of the records that touch it (a change in it, or moving out of it), ascending. */
  readonly #scopeRecords = new Map<string, number[]>();

  /** The highest LSN of a delete or move that compaction dropped (0 when none). */
  readonly floor: bigint;
  /** True for a compacted log, where `base` plus the end of the log is its head even after dropped records. */
  readonly compacted: boolean;
  /** Offset of the first record holding changes: before it, only lists of operations. */
  readableStart = FILE_HEADER_BYTES;
  /** Offset just after the last record that names its own LSN (compaction rewrote it). */
  compactedEnd = FILE_HEADER_BYTES;
  /** Ends and LSNs of the records that name their own LSN, ascending. */
  readonly #namedEnds: number[] = [];
  readonly #namedPositions: bigint[] = [];

  constructor(base: bigint, floor = 0n, compacted = false) {
    this.base = base;
    this.floor = floor;
    this.compacted = compacted;
  }

  /** The LSN of the record that ends at `end`. */
  position(end: number): bigint {
    if (end <= this.compactedEnd) {
      const i = firstAtOrAfter(this.#namedEnds, end);
      if (this.#namedEnds[i] === end) return this.#namedPositions[i]!;
    }
    return this.base + BigInt(end);
  }

  /** The file offset just after the last record at or below an LSN (clamped to the records' range). */
  offset(position: bigint): number {
    const named = this.#namedPositions;
    if (named.length > 0 && position < named.at(-1)!) {
      let low = 0;
      let high = named.length;
      while (low < high) {
        const mid = (low + high) >>> 1;
        if (named[mid]! <= position) low = mid + 1;
        else high = mid;
      }
      return low === 0 ? this.readableStart : this.#namedEnds[low - 1]!;
    }
    const offset = position - this.base;
    if (offset < BigInt(this.compactedEnd)) return this.compactedEnd;
    return offset > BigInt(this.end) ? this.end : Number(offset);
  }

  /** The last record's LSN; before any, the base (0/0 for a new log). In a compacted log, its horizon at least. */
  get head(): bigint {
    if (this.compacted) return this.base + BigInt(this.end);
    return this.records === 0 ? this.base : this.position(this.end);
  }

  get entityCount(): number {
    return this.#entities.size;
  }

  get operationCount(): number {
    return this.#operations.size;
  }

  /** Takes in the record at [`start`, `end`). */
  add(start: number, end: number, index: RecordIndex): void {
    if (start !== this.end) throw new Error(`record at ${start} does not follow the log's end ${this.end}`);
    const last = this.#checkpoints.at(-1)!;
    if (start - last.start >= CHECKPOINT_BYTES) this.#checkpoints.push({ start, changesBefore: this.changes });
    for (const operation of index.operations ?? []) this.#operations.add(hashText(operation.id), start);
    if (index.operations !== undefined && start === this.readableStart) this.readableStart = this.compactedEnd = end;
    if (index.position !== undefined) {
      this.#namedEnds.push(end);
      this.#namedPositions.push(index.position);
      this.compactedEnd = end;
    }
    const touched = new Set<string>();
    for (const [i, [entityType, entityId, isUpdate]] of index.keys.entries()) {
      const key = entityKey(entityType, entityId);
      const scope = index.scopes?.[i];
      touched.add(scope?.scope ?? DEFAULT_SCOPE);
      if (scope?.before !== undefined) touched.add(scope.before);
      if (isUpdate && scope !== undefined && scope.scope !== DEFAULT_SCOPE) this.#entityScopes.set(key, scope.scope);
      else this.#entityScopes.delete(key);
      const before = this.#entities.get(key);
      if (before === start && isUpdate) continue;
      if (before !== undefined) this.#forget(before);
      if (isUpdate) {
        this.#entities.set(key, start);
        this.#count(start);
      } else {
        this.#entities.delete(key);
      }
    }
    if (index.operationId !== undefined) this.#operations.add(hashText(index.operationId), start);
    for (const scope of touched) {
      const starts = this.#scopeRecords.get(scope);
      if (starts) starts.push(start);
      else this.#scopeRecords.set(scope, [start]);
    }
    this.records += 1;
    this.changes += index.keys.length;
    this.end = end;
  }

  /** Starts of the records whose operation id may be `operationId` (same hash). */
  operationCandidates(operationId: string): number[] {
    return this.#operations.get(hashText(operationId));
  }

  /** Start of the record holding the entity's latest value; undefined when it does not exist. */
  entityRecord(key: string): number | undefined {
    return this.#entities.get(key);
  }

  /** The scope of a live entity (the default scope for one that does not exist). */
  entityScope(key: string): string {
    return this.#entityScopes.get(key) ?? DEFAULT_SCOPE;
  }

  /**
   * Starts of the records in [`from`, `to`) that touch one of `scopes`, ascending, at most `limit`:
   * the scopes' lists merged, never a walk of the log.
   */
  scopedRecords(scopes: readonly string[], from: number, to: number, limit: number): number[] {
    const lists = scopes.flatMap((scope) => {
      const starts = this.#scopeRecords.get(scope);
      return starts ? [{ starts, at: firstAtOrAfter(starts, from) }] : [];
    });
    const found: number[] = [];
    while (found.length < limit) {
      let next = to;
      for (const list of lists) {
        const start = list.starts[list.at];
        if (start !== undefined && start < next) next = start;
      }
      if (next >= to) break;
      found.push(next);
      for (const list of lists) if (list.starts[list.at] === next) list.at += 1;
    }
    return found;
  }

  /** How many records in [`from`, `to`) touch each of `scopes`, summed (a record in two counts twice). */
  scopedRecordCount(scopes: readonly string[], from: number, to: number): number {
    let count = 0;
    for (const scope of scopes) {
      const starts = this.#scopeRecords.get(scope);
      if (starts) count += firstAtOrAfter(starts, to) - firstAtOrAfter(starts, from);
    }
    return count;
  }

  /** The first record at or after `offset` that holds some entity's latest value. */
  nextLiveRecord(offset: number): number | undefined {
    for (let i = firstAtOrAfter(this.#liveStarts, offset); i < this.#liveStarts.length; i += 1) {
      if (this.#liveCount.has(this.#liveStarts[i]!)) return this.#liveStarts[i];
    }
    return undefined;
  }

  #count(start: number): void {
    const count = this.#liveCount.get(start) ?? 0;
    this.#liveCount.set(start, count + 1);
    if (count === 0 && this.#liveStarts.at(-1) !== start) this.#liveStarts.push(start);
  }

  #forget(start: number): void {
    const count = this.#liveCount.get(start)! - 1;
    if (count > 0) {
      this.#liveCount.set(start, count);
      return;
    }
    this.#liveCount.delete(start);
    // Dropped from the list once most of its entries no longer hold anything.
    if (this.#liveStarts.length > 64 && this.#liveStarts.length > 2 * this.#liveCount.size) {
      this.#liveStarts = this.#liveStarts.filter((live) => this.#liveCount.has(live));
    }
  }

  /** The last checkpoint at or before `offset`. */
  checkpointBefore(offset: number): { start: number; changesBefore: number } {
    let low = 0;
    let high = this.#checkpoints.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (this.#checkpoints[mid]!.start <= offset) low = mid;
      else high = mid - 1;
    }
    return this.#checkpoints[low]!;
  }

  /** Rough bytes this index holds, for the stats. */
  get bytes(): number {
    let keys = 0;
    for (const key of this.#entities.keys()) keys += 2 * key.length + 40;
    for (const [key, scope] of this.#entityScopes) keys += 2 * (key.length + scope.length) + 40;
    for (const [scope, starts] of this.#scopeRecords) keys += 2 * scope.length + 40 + starts.length * 8;
    return this.#operations.bytes + keys + this.#checkpoints.length * 32 + this.#liveStarts.length * 8 + this.#liveCount.size * 40;
  }
}

/** The index of the first element of ascending `values` that is at least `value`. */
function firstAtOrAfter(values: readonly number[], value: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (values[mid]! < value) low = mid + 1;
    else high = mid;
  }
  return low;
}
