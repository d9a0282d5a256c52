import type { LogFile } from './append-log.ts';
import { decodeFrameHeader, frameIntact, RECORD_HEADER_BYTES, type FrameHeader } from './log-format.ts';

/** One record as read from the file: where it lies, its header, and its index and body bytes. */
export interface Frame {
  start: number;
  end: number;
  header: FrameHeader;
  index: Buffer;
  body: Buffer;
}

/** A record that fails its checks where one must be: the file was damaged after it was written. */
export class CorruptRecordError extends Error {
  override readonly name = 'CorruptRecordError';
  constructor(readonly offset: number, readonly reason: string) {
    super(`corrupt record at byte ${offset} of the log: ${reason}`);
  }
}

const CHUNK_BYTES = 1 << 20;
const SMALL_READ_BYTES = 4096;
/** A page's reads: big enough for few system calls, small enough not to read far past a page. */
const PAGE_READ_BYTES = 256 * 1024;

/**
 * Reads a region of the file forward in chunks of `chunkBytes` (more for a bigger record), so a
 * scan holds one chunk at a time whatever the file's size.
 */
export class ChunkCursor {
  readonly #file: LogFile;
  readonly #chunkBytes: number;
  #chunk = Buffer.alloc(0);
  #chunkStart = 0;

  constructor(file: LogFile, chunkBytes = CHUNK_BYTES) {
    this.#file = file;
    this.#chunkBytes = chunkBytes;
  }

  /**
   * `length` bytes at `offset` (fewer at the end of the file). Every read fills a new buffer, so
   * what was handed out before stays valid.
   */
  async bytes(offset: number, length: number): Promise<Buffer> {
    const from = offset - this.#chunkStart;
    if (from >= 0 && from + length <= this.#chunk.length) return this.#chunk.subarray(from, from + length);
    const size = Math.max(this.#chunkBytes, length);
    const chunk = Buffer.allocUnsafe(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await this.#file.read(chunk, filled, size - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    this.#chunk = chunk.subarray(0, filled);
    this.#chunkStart = offset;
    return this.#chunk.subarray(0, Math.min(length, filled));
  }
}

/** The frame at `start`, checked; or why there is none (`short`: the file ends inside it). */
export async function readFrame(cursor: ChunkCursor, start: number, end: number): Promise<Frame | { problem: string; short: boolean }> {
  if (end - start < RECORD_HEADER_BYTES) return { problem: 'the file ends inside a record header', short: true };
  const header = decodeFrameHeader(await cursor.bytes(start, RECORD_HEADER_BYTES));
  if (typeof header === 'string') return { problem: header, short: false };
  if (start + header.size > end) return { problem: `a record of ${header.size} bytes runs past the end of the file`, short: true };
  const frame = await cursor.bytes(start, header.size);
  if (!frameIntact(header, frame)) return { problem: 'a record fails its checksum', short: false };
  const bodyStart = RECORD_HEADER_BYTES + header.indexBytes;
  return { start, end: start + header.size, header, index: frame.subarray(RECORD_HEADER_BYTES, bodyStart), body: frame.subarray(bodyStart) };
}

/**
 * Reads whole records from `from` (a record boundary) up to `to`, stopping once `budget` bytes or
 * `maxChanges` changes are read (at least one record). A record that fails its checks throws
 * CorruptRecordError.
 */
export async function readFrames(file: LogFile, from: number, to: number, budget: number, maxChanges = Number.POSITIVE_INFINITY): Promise<Frame[]> {
  // One small record costs one small read; a page, reads of a quarter of a megabyte.
  const cursor = new ChunkCursor(file, Math.min(PAGE_READ_BYTES, Math.max(SMALL_READ_BYTES, budget), to - from));
  const frames: Frame[] = [];
  let read = 0;
  let changes = 0;
  for (let at = from; at < to && (frames.length === 0 || read < budget);) {
    const frame = await readFrame(cursor, at, to);
    if ('problem' in frame) throw new CorruptRecordError(at, frame.problem);
    if (frames.length > 0 && changes + frame.header.changeCount > maxChanges) break;
    frames.push(frame);
    read += frame.end - frame.start;
    changes += frame.header.changeCount;
    at = frame.end;
  }
  return frames;
}

/** The record boundaries and change counts from `from` (a boundary) while below `to`, headers only. */
export async function* walkHeaders(file: LogFile, from: number, to: number): AsyncGenerator<{ start: number; end: number; changeCount: number }> {
  const cursor = new ChunkCursor(file, Math.min(CHUNK_BYTES, Math.max(SMALL_READ_BYTES, to - from)));
  for (let at = from; at < to;) {
    const header = decodeFrameHeader(await cursor.bytes(at, RECORD_HEADER_BYTES));
    if (typeof header === 'string') throw new CorruptRecordError(at, header);
    yield { start: at, end: at + header.size, changeCount: header.changeCount };
    at += header.size;
  }
}
