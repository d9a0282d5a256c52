import { crc32 } from 'node:zlib';

/**
 * The embedded store's file: a 32-byte file header, then records. Every record is framed and
 * checksummed, so a torn write, a zero-filled run or a flipped bit is found, never served:
 *
 *   file header  "SYNCLOG2" | u32 header size (32) | u32 0 | u64 base | u32 crc32(bytes 0-23) | u32 0
 *   or, once compacted, "SYNCLOG3" | u64 base | u64 floor | u32 crc32(bytes 0-23) | u32 0
 *   record       u32 crc32(every byte after it) | u16 magic 0x5253 | u8 version 1 | u8 flags 0
 *                | u32 index bytes | u32 body bytes | u32 change count | index | body
 *
 * All numbers little-endian. One checksum covers the record's header fields and payload. A
 * record's LSN is `base` plus the file offset just after it, except in a compacted log: there the
 * file starts with records that list the operations of dropped records, then the records
 * compaction rewrote, each naming its own LSN in its index, then records appended in place.
 * `floor` is the highest LSN of a delete (or a move out of a scope) that compaction dropped: a
 * catch-up from below it could miss one.
 */
export const FILE_HEADER_BYTES = 32;
export const RECORD_HEADER_BYTES = 20;
/** The largest record the store writes or reads (index and body together). */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

const FILE_MAGIC = Buffer.from('SYNCLOG2', 'latin1');
const COMPACTED_MAGIC = Buffer.from('SYNCLOG3', 'latin1');
const RECORD_MAGIC = 0x5253;
const RECORD_VERSION = 1;

export function encodeFileHeader(base: bigint): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  FILE_MAGIC.copy(header, 0);
  header.writeUInt32LE(FILE_HEADER_BYTES, 8);
  header.writeBigUInt64LE(base, 16);
  header.writeUInt32LE(crc32(header.subarray(0, 24)), 24);
  return header;
}

/** The header of a compacted log (see above). */
export function encodeCompactedHeader(base: bigint, floor: bigint): Buffer {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  COMPACTED_MAGIC.copy(header, 0);
  header.writeBigUInt64LE(base, 8);
  header.writeBigUInt64LE(floor, 16);
  header.writeUInt32LE(crc32(header.subarray(0, 24)), 24);
  return header;
}

export interface FileHeader {
  base: bigint;
  /** 0 until compaction dropped a delete. */
  floor: bigint;
  compacted: boolean;
}

/** What a file header says, or why it is not one of ours. */
export function decodeFileHeader(header: Buffer): FileHeader | string {
  if (header.length < FILE_HEADER_BYTES) return 'the file is shorter than its header';
  if (header.subarray(0, 8).equals(COMPACTED_MAGIC)) {
    if (header.readUInt32LE(24) !== crc32(header.subarray(0, 24))) return 'the file header fails its checksum';
    return { base: header.readBigUInt64LE(8), floor: header.readBigUInt64LE(16), compacted: true };
  }
  if (!header.subarray(0, 8).equals(FILE_MAGIC)) return 'the file does not start with SYNCLOG2: not a sync log';
  if (header.readUInt32LE(24) !== crc32(header.subarray(0, 24))) return 'the file header fails its checksum';
  if (header.readUInt32LE(8) !== FILE_HEADER_BYTES) return 'the file header has an unknown size';
  return { base: header.readBigUInt64LE(16), floor: 0n, compacted: false };
}

/** A record's frame header, read (its checksum is checked with the whole record). */
export interface FrameHeader {
  checksum: number;
  indexBytes: number;
  bodyBytes: number;
  changeCount: number;
  /** Header and payload together. */
  size: number;
}

/** One record's bytes: its header, then `index` and `body`. */
export function encodeFrame(index: Buffer, body: Buffer, changeCount: number): Buffer {
  const frame = Buffer.allocUnsafe(RECORD_HEADER_BYTES + index.length + body.length);
  frame.writeUInt16LE(RECORD_MAGIC, 4);
  frame.writeUInt8(RECORD_VERSION, 6);
  frame.writeUInt8(0, 7);
  frame.writeUInt32LE(index.length, 8);
  frame.writeUInt32LE(body.length, 12);
  frame.writeUInt32LE(changeCount, 16);
  index.copy(frame, RECORD_HEADER_BYTES);
  body.copy(frame, RECORD_HEADER_BYTES + index.length);
  frame.writeUInt32LE(crc32(frame.subarray(4)), 0);
  return frame;
}

/** Reads a record header (20 bytes); returns why none can start here. */
export function decodeFrameHeader(bytes: Buffer): FrameHeader | string {
  if (bytes.length < RECORD_HEADER_BYTES) return 'a record header is cut short';
  if (bytes.readUInt16LE(4) !== RECORD_MAGIC || bytes.readUInt8(6) !== RECORD_VERSION) return 'no record starts here';
  const indexBytes = bytes.readUInt32LE(8);
  const bodyBytes = bytes.readUInt32LE(12);
  if (indexBytes + bodyBytes > MAX_RECORD_BYTES) return `a record of ${indexBytes + bodyBytes} bytes is over the ${MAX_RECORD_BYTES}-byte limit`;
  return {
    checksum: bytes.readUInt32LE(0),
    indexBytes,
    bodyBytes,
    changeCount: bytes.readUInt32LE(16),
    size: RECORD_HEADER_BYTES + indexBytes + bodyBytes,
  };
}

/** True when `frame` (a whole record, header included) is what its checksum says. */
export function frameIntact(header: FrameHeader, frame: Buffer): boolean {
  return crc32(frame.subarray(4)) === header.checksum;
}

/** Offsets in `bytes` at or after `from` where a record might start, for a search past damage. */
export function* candidateFrames(bytes: Buffer, from: number): Generator<number> {
  const magic = Buffer.from([RECORD_MAGIC & 0xff, RECORD_MAGIC >> 8, RECORD_VERSION]);
  for (let at = bytes.indexOf(magic, from + 4); at >= 0; at = bytes.indexOf(magic, at + 1)) yield at - 4;
}
