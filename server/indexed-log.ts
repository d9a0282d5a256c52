import { formatLSN } from '../src/protocol/lsn.ts';
import type { LogFile } from './append-log.ts';
import { entityKey } from './edit.ts';
import { entityPage } from './entity-pages.ts';
import type { LogIndex } from './log-index.ts';
import { decodeIndexOrThrow, LogRecord } from './log-record.ts';
import { ChunkCursor, CorruptRecordError, readFrame, readFrames, walkHeaders, type Frame } from './log-reader.ts';
import type { RecordIndex } from './record-codec.ts';
import { LogCompactedError, missedRemovals, PAGE_BYTES, type EntityPage, type PageOptions, type ReadOptions, type StoredRecord } from './sync-store.ts';

/** Bytes read at a time while a scoped catch-up reads records scattered over the log. */
const SCATTERED_READ_BYTES = 64 * 1024;

/** Boundaries remembered as known (ends of records just read), so most reads need no walk. */
const KNOWN_BOUNDARIES = 4096;

/**
 * One file of the embedded log with its in-memory index, and the reads that use both: the data
 * stays on disk and is read back in pages, from where the index says. A compaction replaces the
 * file, and with it this object.
 */
export class IndexedLog {
  readonly file: LogFile;
  readonly index: LogIndex;
  readonly #boundaries = new Set<number>();

  constructor(file: LogFile, index: LogIndex) {
    this.file = file;
    this.index = index;
  }

  /** Indexes a record just made durable at [start, end) and answers its position. */
  add(start: number, end: number, recordIndex: RecordIndex): bigint {
    this.index.add(start, end, recordIndex);
    this.#remember(end);
    return this.index.position(end);
  }

  async changesAfter(after: bigint, { until, maxChanges, maxBytes = PAGE_BYTES, scopes, floor }: ReadOptions): Promise<StoredRecord[]> {
    if (missedRemovals(after, this.index.floor, floor)) throw new LogCompactedError(after, this.index.floor);
    const from = await this.#boundaryAfter(after);
    const to = this.index.offset(until);
    if (from >= to) return [];
    if (scopes !== undefined) return this.#scopedAfter(scopes, from, to, maxChanges, maxBytes);
    const frames = await readFrames(this.file, from, to, maxBytes, maxChanges);
    const last = frames.at(-1);
    if (last) this.#remember(last.end);
    return frames.map((frame) => this.#decode(frame));
  }

  async countChangesAfter(after: bigint, until: bigint, scopes?: readonly string[]): Promise<number> {
    const from = await this.#boundaryAfter(after);
    const to = await this.#boundaryAfter(until);
    if (scopes !== undefined) return to <= from ? 0 : this.index.scopedRecordCount(scopes, from, to);
    return to <= from ? 0 : (await this.#changesBefore(to)) - (await this.#changesBefore(from));
  }

  entities(page: PageOptions): Promise<EntityPage> {
    return entityPage(page, {
      file: this.file,
      index: this.index,
      head: formatLSN(this.index.head),
      decode: (frame) => this.#decode(frame),
    });
  }

  /** The LSN of the record that applied `operationId`, and the fingerprint it was kept with, if one did. */
  async findOperation(operationId: string): Promise<{ position: bigint; fingerprint?: string } | undefined> {
    for (const start of this.index.operationCandidates(operationId)) {
      const [frame] = await readFrames(this.file, start, this.index.end, 0);
      const index = frame && decodeIndexOrThrow(frame);
      if (frame && index?.operationId === operationId) {
        const position = this.index.position(frame.end);
        return index.fingerprint === undefined ? { position } : { position, fingerprint: index.fingerprint };
      }
      const listed = index?.operations?.find((operation) => operation.id === operationId);
      if (listed) return listed.fingerprint === undefined ? { position: listed.position } : { position: listed.position, fingerprint: listed.fingerprint };
    }
    return undefined;
  }

  /** An entity's durable value, read from the record holding its latest change. */
  async storedValue(key: string): Promise<{ value: unknown } | undefined> {
    const start = this.index.entityRecord(key);
    if (start === undefined) return undefined;
    const [frame] = await readFrames(this.file, start, this.index.end, 0);
    let found: { value: unknown } | undefined;
    for (const change of frame ? this.#decode(frame).changes : []) {
      if (entityKey(change.entityType, change.entityId) === key && change.type === 'update') found = { value: change.data };
    }
    return found;
  }

  /** Records in [from, to) that touch `scopes`, read one by one from where the scope index says. */
  async #scopedAfter(scopes: readonly string[], from: number, to: number, maxChanges: number, maxBytes: number): Promise<StoredRecord[]> {
    const records: StoredRecord[] = [];
    const cursor = new ChunkCursor(this.file, SCATTERED_READ_BYTES);
    let changes = 0;
    let bytes = 0;
    for (const start of this.index.scopedRecords(scopes, from, to, maxChanges)) {
      const frame = await readFrame(cursor, start, this.index.end);
      if (!('header' in frame)) throw new CorruptRecordError(start, frame.problem);
      if (records.length > 0 && (changes + frame.header.changeCount > maxChanges || bytes >= maxBytes)) break;
      records.push(this.#decode(frame));
      changes += frame.header.changeCount;
      bytes += frame.end - frame.start;
      this.#remember(frame.end);
    }
    return records;
  }

  #decode(frame: Frame): StoredRecord {
    return new LogRecord(frame, this.index.position(frame.end));
  }

  /** The file offset of the first record whose LSN is above `position` (the end if none). */
  async #boundaryAfter(position: bigint): Promise<number> {
    const offset = this.index.offset(position);
    if (offset >= this.index.end || this.#boundaries.has(offset)) return offset;
    const { start } = this.index.checkpointBefore(offset);
    for await (const record of walkHeaders(this.file, start, this.index.end)) {
      if (record.end > offset) return record.start;
    }
    return this.index.end;
  }

  /** Changes in the records before the boundary `offset`. */
  async #changesBefore(offset: number): Promise<number> {
    if (offset >= this.index.end) return this.index.changes;
    const checkpoint = this.index.checkpointBefore(offset);
    let changes = checkpoint.changesBefore;
    for await (const record of walkHeaders(this.file, checkpoint.start, offset)) changes += record.changeCount;
    return changes;
  }

  #remember(boundary: number): void {
    if (this.#boundaries.size >= KNOWN_BOUNDARIES) this.#boundaries.clear();
    this.#boundaries.add(boundary);
  }
}
