import type { Change } from '../src/protocol/change.ts';
import { writeFully, type LogFile } from './append-log.ts';
import { entityKey } from './edit.ts';
import type { LogIndex } from './log-index.ts';
import { encodeCompactedHeader, encodeFrame, FILE_HEADER_BYTES, MAX_RECORD_BYTES } from './log-format.ts';
import { ChunkCursor, CorruptRecordError, readFrame, type Frame } from './log-reader.ts';
import { decodeChanges, decodeIndex, encodeOperationsRecord, encodeRecord, type AppliedOperation, type RecordIndex } from './record-codec.ts';
import type { ChangeScope } from './scopes.ts';

/** Bytes of output gathered before they are written. */
const WRITE_BYTES = 1 << 20;
/** Bytes of operation ids one list record holds at most. */
const OPERATIONS_BYTES = 1 << 20;

/** The latest change of one entity below the horizon. */
interface Latest {
  position: bigint;
  change: number;
  /** A delete to be dropped (older than the retention). */
  expiredDelete: boolean;
}

/** Which changes below the horizon stay, found by reading the records once. */
interface Plan {
  latest: Map<string, Latest>;
  /** `position:change` of superseded deletes and moves out of a scope that are kept. */
  removals: Set<string>;
  /** Every operation id applied below the horizon, with where. */
  operations: AppliedOperation[];
  floor: bigint;
  removalsDropped: number;
}

export interface CompactedFile {
  /** Offset just after the copied records (the compacted ones and the tail up to `copiedTo`). */
  end: number;
  /** The old log's offset up to which its records were copied. */
  copiedTo: number;
  base: bigint;
  floor: bigint;
  removalsDropped: number;
}

/**
 * Writes into `out` (empty) the compacted form of the log in `file` up to `to`: below the
 * horizon (`horizonEnd`, a record boundary) the lists of operations applied, then the kept
 * changes in records that name their own LSN; after it, the records up to `to` as they are, at
 * the same LSNs (the new base says so). Returns undefined when it would not be smaller.
 */
export async function writeCompacted(file: LogFile, index: LogIndex, out: LogFile, horizonEnd: number, to: number, keepRemovalsSince: number): Promise<CompactedFile | undefined> {
  const plan = await planCompaction(file, index, horizonEnd, keepRemovalsSince);
  const writer = new Writer(out, FILE_HEADER_BYTES);
  const keptOf = (position: bigint, recordIndex: RecordIndex) => recordIndex.keys.map(([entityType, entityId], i) => {
    const latest = plan.latest.get(entityKey(entityType, entityId));
    const isLatest = latest !== undefined && latest.position === position && latest.change === i;
    return (isLatest && !latest.expiredDelete) || plan.removals.has(`${position}:${i}`);
  });
  // The operations of the records that go are listed first: a catch-up starts reading after them.
  const dropped = new Set<bigint>(plan.operations.map((operation) => operation.position));
  await eachRecord(file, FILE_HEADER_BYTES, horizonEnd, (frame, recordIndex) => {
    if (recordIndex.operationId !== undefined && keptOf(index.position(frame.end), recordIndex).includes(true)) dropped.delete(index.position(frame.end));
  });
  let list: AppliedOperation[] = [];
  let listBytes = 0;
  for (const operation of plan.operations) {
    if (!dropped.has(operation.position)) continue;
    list.push(operation);
    listBytes += 16 + operation.id.length * 3 + (operation.fingerprint?.length ?? 0) * 3;
    if (listBytes >= OPERATIONS_BYTES) {
      await writer.write(encodeOperationsRecord(list));
      list = [];
      listBytes = 0;
    }
  }
  if (list.length > 0) await writer.write(encodeOperationsRecord(list));
  await eachRecord(file, FILE_HEADER_BYTES, horizonEnd, async (frame, recordIndex) => {
    const position = index.position(frame.end);
    const keep = keptOf(position, recordIndex);
    if (!keep.includes(true)) return;
    if (recordIndex.position !== undefined && !keep.includes(false)) {
      await writer.write(encodeFrame(frame.index, frame.body, frame.header.changeCount));
    } else {
      const changes = changesOf(frame, recordIndex).filter((_, i) => keep[i]);
      const scopes = recordIndex.scopes?.filter((_, i) => keep[i]);
      await writer.write(encodeRecord(changes, recordIndex.operationId, scopes, recordIndex.fingerprint, position));
    }
  });
  const compactedEnd = writer.end;
  if (compactedEnd >= horizonEnd && plan.removalsDropped === 0) return undefined;
  if (BigInt(horizonEnd) + index.base < BigInt(compactedEnd)) return undefined;
  await copyRecords(file, horizonEnd, to, writer);
  await writer.flush();
  const base = index.base + BigInt(horizonEnd) - BigInt(compactedEnd);
  const floor = plan.floor > index.floor ? plan.floor : index.floor;
  await writeFully(out, encodeCompactedHeader(base, floor), 0);
  return { end: writer.end, copiedTo: to, base, floor, removalsDropped: plan.removalsDropped };
}

/** Appends the old log's bytes in [`from`, `to`) to `writer`, as they are. */
export async function copyRecords(file: LogFile, from: number, to: number, writer: Writer): Promise<void> {
  const chunk = Buffer.allocUnsafe(WRITE_BYTES);
  for (let at = from; at < to;) {
    const length = Math.min(chunk.length, to - at);
    const { bytesRead } = await file.read(chunk, 0, length, at);
    if (bytesRead === 0) throw new Error(`the log ends at ${at}, before ${to}`);
    await writer.write(Buffer.from(chunk.subarray(0, bytesRead)));
    at += bytesRead;
  }
  await writer.flush();
}

/** The first pass: each entity's latest change, the removals kept, the operations, the new floor. */
async function planCompaction(file: LogFile, index: LogIndex, horizonEnd: number, keepRemovalsSince: number): Promise<Plan> {
  const plan: Plan = { latest: new Map(), removals: new Set(), operations: [], floor: 0n, removalsDropped: 0 };
  const removalKept = new Map<string, boolean>();
  const drop = (position: bigint) => {
    plan.removalsDropped += 1;
    if (position > plan.floor) plan.floor = position;
  };
  await eachRecord(file, FILE_HEADER_BYTES, horizonEnd, (frame, recordIndex) => {
    plan.operations.push(...(recordIndex.operations ?? []));
    if (recordIndex.keys.length === 0) return;
    const position = index.position(frame.end);
    if (recordIndex.operationId !== undefined) {
      const operation: AppliedOperation = { id: recordIndex.operationId, position };
      if (recordIndex.fingerprint !== undefined) operation.fingerprint = recordIndex.fingerprint;
      plan.operations.push(operation);
    }
    const removals = recordIndex.keys.map(([, , isUpdate], i) => !isUpdate || recordIndex.scopes?.[i]?.before !== undefined);
    const changes = removals.includes(true) ? changesOf(frame, recordIndex) : undefined;
    for (const [i, [entityType, entityId, isUpdate]] of recordIndex.keys.entries()) {
      const key = entityKey(entityType, entityId);
      const before = plan.latest.get(key);
      if (before !== undefined) {
        const kept = removalKept.get(`${before.position}:${before.change}`);
        if (kept === true) plan.removals.add(`${before.position}:${before.change}`);
        else if (kept === false) drop(before.position);
        removalKept.delete(`${before.position}:${before.change}`);
      }
      if (removals[i]) removalKept.set(`${position}:${i}`, (changes![i]!.timestamp ?? Number.NEGATIVE_INFINITY) >= keepRemovalsSince);
      plan.latest.set(key, { position, change: i, expiredDelete: false });
      if (!isUpdate && removalKept.get(`${position}:${i}`) === false) plan.latest.get(key)!.expiredDelete = true;
    }
  });
  for (const latest of plan.latest.values()) if (latest.expiredDelete) drop(latest.position);
  return plan;
}

function changesOf(frame: Frame, index: RecordIndex): Change[] {
  const changes = decodeChanges(index, frame.body.toString('utf8'));
  if (typeof changes === 'string') throw new CorruptRecordError(frame.start, changes);
  return changes;
}

/** Reads the records in [`from`, `to`) in order. */
async function eachRecord(file: LogFile, from: number, to: number, onRecord: (frame: Frame, index: RecordIndex) => void | Promise<void>): Promise<void> {
  const cursor = new ChunkCursor(file);
  for (let at = from; at < to;) {
    const frame = await readFrame(cursor, at, to);
    if ('problem' in frame) throw new CorruptRecordError(at, frame.problem);
    const index = decodeIndex(frame.index, frame.header.changeCount);
    if (typeof index === 'string') throw new CorruptRecordError(at, index);
    await onRecord(frame, index);
    at = frame.end;
  }
}

/** Writes records one after another into a file, gathered into larger writes. */
export class Writer {
  readonly #file: LogFile;
  #parts: Buffer[] = [];
  #gathered = 0;
  #written: number;

  constructor(file: LogFile, at: number) {
    this.#file = file;
    this.#written = at;
  }

  get end(): number {
    return this.#written + this.#gathered;
  }

  async write(bytes: Buffer): Promise<void> {
    if (bytes.length > MAX_RECORD_BYTES + FILE_HEADER_BYTES) throw new RangeError('record too large');
    this.#parts.push(bytes);
    this.#gathered += bytes.length;
    if (this.#gathered >= WRITE_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#gathered === 0) return;
    const bytes = Buffer.concat(this.#parts);
    this.#parts = [];
    await writeFully(this.#file, bytes, this.#written);
    this.#written += bytes.length;
    this.#gathered = 0;
  }
}
