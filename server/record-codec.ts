import { isRecord, parseChange, type Change } from '../src/protocol/change.ts';
import { encodeFrame } from './log-format.ts';

/** What a record's index holds: enough to rebuild the store's indexes without reading the data. */
export interface RecordIndex {
  operationId?: string;
  /** `[entityType, entityId, isUpdate]` of each change, in order. */
  keys: [string, string, boolean][];
}

/** Marks "no operation id" in the index. */
const NO_OPERATION = 0xffff;

/**
 * One record's frame. The index is binary, read on open without parsing any JSON:
 * `u16 operation id bytes (0xFFFF: none) | operation id` then per change
 * `u8 1 (update) or 0 (delete) | u16 bytes | entity type | u16 bytes | entity id` (UTF-8).
 * The body is the changes as a JSON array, exactly as clients get them, so a catch-up frame is
 * put together from bodies without parsing them.
 */
export function encodeRecord(changes: readonly Change[], operationId?: string): Buffer {
  let size = 2 + (operationId === undefined ? 0 : Buffer.byteLength(operationId));
  for (const change of changes) size += 5 + Buffer.byteLength(change.entityType) + Buffer.byteLength(change.entityId);
  const index = Buffer.allocUnsafe(size);
  let at = operationId === undefined ? index.writeUInt16LE(NO_OPERATION, 0) : writeText(index, 0, operationId);
  for (const change of changes) {
    at = index.writeUInt8(change.type === 'update' ? 1 : 0, at);
    at = writeText(index, at, change.entityType);
    at = writeText(index, at, change.entityId);
  }
  return encodeFrame(index, Buffer.from(JSON.stringify(changes)), changes.length);
}

/** Writes `u16 length | UTF-8 text` at `at`; returns the offset after it. */
function writeText(buffer: Buffer, at: number, text: string): number {
  const length = buffer.write(text, at + 2, 'utf8');
  if (length >= NO_OPERATION) throw new RangeError(`${length} bytes is too long for a key of the log`);
  buffer.writeUInt16LE(length, at);
  return at + 2 + length;
}

/** Reads `u16 length | UTF-8 text` at `at`: the text and the offset after it, or undefined past the end. */
function readText(bytes: Buffer, at: number): { text: string; next: number } | undefined {
  if (at + 2 > bytes.length) return undefined;
  const next = at + 2 + bytes.readUInt16LE(at);
  return next > bytes.length ? undefined : { text: bytes.toString('utf8', at + 2, next), next };
}

/** Reads a record's index; returns why it is not one. */
export function decodeIndex(bytes: Buffer, changeCount: number): RecordIndex | string {
  const index: RecordIndex = { keys: [] };
  let at = 2;
  if (bytes.length < 2 || bytes.readUInt16LE(0) !== NO_OPERATION) {
    const operation = readText(bytes, 0);
    if (operation === undefined) return 'its index is cut short';
    index.operationId = operation.text;
    at = operation.next;
  }
  for (let i = 0; i < changeCount; i += 1) {
    const kind = bytes[at];
    const type = readText(bytes, at + 1);
    const id = type && readText(bytes, type.next);
    if ((kind !== 0 && kind !== 1) || type === undefined || id === undefined) return 'its index holds an invalid key';
    index.keys.push([type.text, id.text, kind === 1]);
    at = id.next;
  }
  return at === bytes.length ? index : 'its index is longer than its keys';
}

/** A record's changes from its body, checked against its index; returns why they are not valid. */
export function decodeChanges(index: RecordIndex, body: string): Change[] | string {
  let items: unknown;
  try {
    items = JSON.parse(body);
  } catch {
    return 'its body is not JSON';
  }
  if (!Array.isArray(items) || items.length !== index.keys.length) return 'its body does not match its index';
  const changes: Change[] = [];
  for (const [i, [entityType, entityId, isUpdate]] of index.keys.entries()) {
    const change = isRecord(items[i]) ? parseChange(items[i]) : 'not an object';
    if (typeof change === 'string') return `it holds an invalid change: ${change}`;
    if (change.entityType !== entityType || change.entityId !== entityId || (change.type === 'update') !== isUpdate) {
      return 'its body does not match its index';
    }
    changes.push(change);
  }
  return changes;
}
