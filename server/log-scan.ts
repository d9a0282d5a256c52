import type { LogFile } from './append-log.ts';
import { candidateFrames } from './log-format.ts';
import { ChunkCursor, readFrame, type Frame } from './log-reader.ts';

/** Where the log stops being readable, and what lies beyond. */
export interface Damage {
  /** File offset of the first byte that is not a valid record. */
  offset: number;
  reason: string;
  /** The first intact record after it, if any: the damage is in the middle of the log. */
  nextIntact?: number;
  /** Bytes from `offset` to the end of the file. */
  bytes: number;
}

export interface ScanResult {
  /** Offset just after the last valid record before any damage. */
  end: number;
  damage?: Damage;
}

const SEARCH_CHUNK = 1 << 20;

/**
 * Reads every record from `from` to `size`, checking each (framing, checksums, `check`), and
 * calls `onRecord` for each in order. Stops at the first one that fails and says where, and
 * whether an intact record follows (a damaged middle) or not (a damaged or torn tail). Holds one
 * chunk of the file at a time.
 */
export async function scanLog(
  file: LogFile,
  from: number,
  size: number,
  onRecord: (frame: Frame) => string | undefined,
): Promise<ScanResult> {
  const cursor = new ChunkCursor(file);
  let at = from;
  while (at < size) {
    const frame = await readFrame(cursor, at, size);
    const problem = 'problem' in frame ? frame.problem : onRecord(frame);
    if (problem !== undefined) {
      const nextIntact = await findIntact(file, at + 1, size);
      return { end: at, damage: { offset: at, reason: problem, bytes: size - at, ...(nextIntact === undefined ? {} : { nextIntact }) } };
    }
    at = (frame as Frame).end;
  }
  return { end: at };
}

/** The offset of the first record that passes every check at or after `from`, if any. */
async function findIntact(file: LogFile, from: number, size: number): Promise<number | undefined> {
  const search = new ChunkCursor(file);
  const check = new ChunkCursor(file);
  for (let chunkStart = from; chunkStart < size; chunkStart += SEARCH_CHUNK) {
    // A little overlap, so a header split across two chunks is still seen.
    const bytes = Buffer.from(await search.bytes(chunkStart, Math.min(SEARCH_CHUNK + 2, size - chunkStart)));
    for (const candidate of candidateFrames(bytes, 0)) {
      if (candidate < 0) continue;
      if (candidate >= SEARCH_CHUNK) break;
      const frame = await readFrame(check, chunkStart + candidate, size);
      if (!('problem' in frame)) return frame.start;
    }
  }
  return undefined;
}
