import type { LogFile } from './append-log.ts';
import { decodeFrameHeader, payloadIntact, RECORD_HEADER_BYTES, type FrameHeader } from './log-format.ts';

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

  /** `length` bytes at `offset` (fewer at the end of the file); valid until the next call. */
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
  const header = decodeFrameHeader(Buffer.from(await cursor.bytes(start, RECORD_HEADER_BYTES)));
  if (typeof header === 'string') return { problem: header, short: false };
  if (start + header.size > end) return { problem: `a record of ${header.size} bytes runs past the end of the file`, short: true };
  const payload = await cursor.bytes(start + RECORD_HEADER_BYTES, header.size - RECORD_HEADER_BYTES);
  if (!payloadIntact(header, payload)) return { problem: 'a record fails its checksum', short: false };
  return {
    start,
    end: start + header.size,
    header,
    index: payload.subarray(0, header.indexBytes),
    body: payload.subarray(header.indexBytes),
  };
}

/**
 * Reads whole records from `from` (a record boundary) up to `to`, stopping once `budget` bytes are
 * read (at least one record). A record that fails its checks throws CorruptRecordError. The
 * frames' bytes are copies: they outlive the cursor.
 */
export async function readFrames(file: LogFile, from: number, to: number, budget: number): Promise<Frame[]> {
  // One small record costs one small read; a page, reads of up to a megabyte.
  const cursor = new ChunkCursor(file, Math.min(CHUNK_BYTES, Math.max(SMALL_READ_BYTES, budget), to - from));
  const frames: Frame[] = [];
  let read = 0;
  for (let at = from; at < to && (frames.length === 0 || read < budget);) {
    const frame = await readFrame(cursor, at, to);
    if ('problem' in frame) throw new CorruptRecordError(at, frame.problem);
    frames.push({ ...frame, index: Buffer.from(frame.index), body: Buffer.from(frame.body) });
    read += frame.end - frame.start;
    at = frame.end;
  }
  return frames;
}

/** The record boundaries and change counts from `from` (a boundary) while below `to`, headers only. */
export async function* walkHeaders(file: LogFile, from: number, to: number): AsyncGenerator<{ start: number; end: number; changeCount: number }> {
  const cursor = new ChunkCursor(file, Math.min(CHUNK_BYTES, Math.max(SMALL_READ_BYTES, to - from)));
  for (let at = from; at < to;) {
    const header = decodeFrameHeader(Buffer.from(await cursor.bytes(at, RECORD_HEADER_BYTES)));
    if (typeof header === 'string') throw new CorruptRecordError(at, header);
    yield { start: at, end: at + header.size, changeCount: header.changeCount };
    at += header.size;
  }
}
