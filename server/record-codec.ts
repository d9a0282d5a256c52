import { isRecord, parseChange, type Change } from '../src/protocol/change.ts';
import { encodeFrame } from './log-format.ts';
import { DEFAULT_SCOPE, type ChangeScope } from './scopes.ts';

/** What a record's index holds: enough to rebuild the store's indexes without reading the data. */
export interface RecordIndex {
  operationId?: string;
  /** A digest of the operation (its type and payload), to tell a reused id from a repeat. */
  fingerprint?: string;
  /** `[entityType, entityId, isUpdate]` of each change, in order. */
  keys: [string, string, boolean][];
  /** Each change's scope, in order; absent when every change is in the default scope. */
  scopes?: ChangeScope[];
  /**
   * The record's LSN, for a record that compaction rewrote (its offset no longer tells it); absent
   * for a record appended in place.
   */
  position?: bigint;
  /** For a record of compaction that carries no changes: the operations applied by records it dropped. */
  operations?: AppliedOperation[];
}

/** An operation id applied by a record that compaction dropped: where it was applied, and its digest. */
export interface AppliedOperation {
  id: string;
  position: bigint;
  fingerprint?: string;
}

/** Marks "no operation id" in the index. */
const NO_OPERATION = 0xffff;
/** Marks "an operation id and its fingerprint follow". */
const FINGERPRINTED = 0xfffe;
/** Marks "u64 position follows, then the index as usual" (a record compaction rewrote). */
const POSITIONED = 0xfffd;
/** Marks an index that lists operations: `u32 count`, then per operation `u64 position | id | u8 1 | fingerprint` or `... | u8 0`. */
const OPERATIONS = 0xfffc;
const UPDATE = 1;
const HAS_SCOPE = 2;
const HAS_BEFORE = 4;

/**
 * One record's frame. The index is binary, read on open without parsing any JSON:
 * `u16 operation id bytes (0xFFFF: none; 0xFFFE: u16 bytes | id | u16 bytes | fingerprint follow) |
 * operation id` then per change `u8 flags | u16 bytes | entity type | u16 bytes | entity id`
 * (UTF-8), where flags are 1 (an update, else a delete), 2 (`u16 bytes | scope` follows; else the
 * default scope) and 4 (`u16 bytes | scope before` follows: a move). Records written before scopes
 * existed have flags 0 or 1 and read as the default scope.
 * The body is the changes as a JSON array, exactly as clients get them, so a catch-up frame is
 * put together from bodies without parsing them.
 */
export function encodeRecord(changes: readonly Change[], operationId?: string, scopes?: readonly ChangeScope[], fingerprint?: string, position?: bigint): Buffer {
  const index = encodeIndex(changes, operationId, scopes, fingerprint);
  const body = Buffer.from(JSON.stringify(changes));
  return encodeFrame(position === undefined ? index : Buffer.concat([positionPrefix(position), index]), body, changes.length);
}

/** A record without changes that keeps the ids of operations whose records compaction dropped. */
export function encodeOperationsRecord(operations: readonly AppliedOperation[]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(6)];
  parts[0]!.writeUInt16LE(OPERATIONS, 0);
  parts[0]!.writeUInt32LE(operations.length, 2);
  for (const operation of operations) {
    const id = Buffer.from(operation.id);
    const fingerprint = operation.fingerprint === undefined ? undefined : Buffer.from(operation.fingerprint);
    const head = Buffer.alloc(10);
    head.writeBigUInt64LE(operation.position, 0);
    head.writeUInt16LE(id.length, 8);
    const tail = Buffer.alloc(fingerprint === undefined ? 1 : 3);
    if (fingerprint !== undefined) {
      tail.writeUInt8(1, 0);
      tail.writeUInt16LE(fingerprint.length, 1);
    }
    parts.push(head, id, tail);
    if (fingerprint !== undefined) parts.push(fingerprint);
  }
  return encodeFrame(Buffer.concat(parts), Buffer.from('[]'), 0);
}

function positionPrefix(position: bigint): Buffer {
  const prefix = Buffer.alloc(10);
  prefix.writeUInt16LE(POSITIONED, 0);
  prefix.writeBigUInt64LE(position, 2);
  return prefix;
}

function encodeIndex(changes: readonly Change[], operationId?: string, scopes?: readonly ChangeScope[], fingerprint?: string): Buffer {
  const bytes = Buffer.byteLength;
  let size = 2 + (operationId === undefined ? 0 : bytes(operationId)) + (fingerprint === undefined || operationId === undefined ? 0 : 4 + bytes(fingerprint));
  for (const [i, change] of changes.entries()) {
    size += 5 + bytes(change.entityType) + bytes(change.entityId);
    const scope = scopes?.[i];
    if (scope && scope.scope !== DEFAULT_SCOPE) size += 2 + bytes(scope.scope);
    if (scope?.before !== undefined) size += 2 + bytes(scope.before);
  }
  const index = Buffer.allocUnsafe(size);
  let at = 0;
  if (operationId === undefined) {
    at = index.writeUInt16LE(NO_OPERATION, 0);
  } else if (fingerprint === undefined) {
    at = writeText(index, 0, operationId);
  } else {
    at = index.writeUInt16LE(FINGERPRINTED, 0);
    at = writeText(index, at, operationId);
    at = writeText(index, at, fingerprint);
  }
  for (const [i, change] of changes.entries()) {
    const scope = scopes?.[i];
    const scoped = scope !== undefined && scope.scope !== DEFAULT_SCOPE;
    at = index.writeUInt8((change.type === 'update' ? UPDATE : 0) | (scoped ? HAS_SCOPE : 0) | (scope?.before !== undefined ? HAS_BEFORE : 0), at);
    at = writeText(index, at, change.entityType);
    at = writeText(index, at, change.entityId);
    if (scoped) at = writeText(index, at, scope.scope);
    if (scope?.before !== undefined) at = writeText(index, at, scope.before);
  }
  return index;
}

/** Writes `u16 length | UTF-8 text` at `at`; returns the offset after it. */
function writeText(buffer: Buffer, at: number, text: string): number {
  const length = buffer.write(text, at + 2, 'utf8');
  if (length >= FINGERPRINTED) throw new RangeError(`${length} bytes is too long for a key of the log`);
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
  const marker = bytes.length < 2 ? undefined : bytes.readUInt16LE(0);
  if (marker === OPERATIONS) return changeCount === 0 ? decodeOperations(bytes) : 'its index lists operations beside changes';
  if (marker !== POSITIONED) return decodeKeys(bytes, changeCount);
  if (bytes.length < 10) return 'its index is cut short';
  const index = decodeKeys(bytes.subarray(10), changeCount);
  if (typeof index !== 'string') index.position = bytes.readBigUInt64LE(2);
  return index;
}

function decodeOperations(bytes: Buffer): RecordIndex | string {
  if (bytes.length < 6) return 'its index is cut short';
  const operations: AppliedOperation[] = [];
  let at = 6;
  for (let count = bytes.readUInt32LE(2); count > 0; count -= 1) {
    if (at + 8 > bytes.length) return 'its operations are cut short';
    const position = bytes.readBigUInt64LE(at);
    const id = readText(bytes, at + 8);
    if (id === undefined || id.next >= bytes.length) return 'its operations are cut short';
    const fingerprint = bytes[id.next] === 1 ? readText(bytes, id.next + 1) : { text: undefined, next: id.next + 1 };
    if (fingerprint === undefined) return 'its operations are cut short';
    operations.push(fingerprint.text === undefined ? { id: id.text, position } : { id: id.text, position, fingerprint: fingerprint.text });
    at = fingerprint.next;
  }
  return at === bytes.length ? { keys: [], operations } : 'its index is longer than its operations';
}

function decodeKeys(bytes: Buffer, changeCount: number): RecordIndex | string {
  const index: RecordIndex = { keys: [] };
  let at = 2;
  const marker = bytes.length < 2 ? undefined : bytes.readUInt16LE(0);
  if (marker === FINGERPRINTED) {
    const operation = readText(bytes, 2);
    const fingerprint = operation && readText(bytes, operation.next);
    if (fingerprint === undefined) return 'its index is cut short';
    index.operationId = operation!.text;
    index.fingerprint = fingerprint.text;
    at = fingerprint.next;
  } else if (marker !== NO_OPERATION) {
    const operation = readText(bytes, 0);
    if (operation === undefined) return 'its index is cut short';
    index.operationId = operation.text;
    at = operation.next;
  }
  const scopes: ChangeScope[] = [];
  let scoped = false;
  for (let i = 0; i < changeCount; i += 1) {
    const flags = bytes[at];
    const type = readText(bytes, at + 1);
    const id = type && readText(bytes, type.next);
    if (flags === undefined || flags > 7 || type === undefined || id === undefined) return 'its index holds an invalid key';
    index.keys.push([type.text, id.text, (flags & UPDATE) !== 0]);
    at = id.next;
    const scope = (flags & HAS_SCOPE) !== 0 ? readText(bytes, at) : { text: DEFAULT_SCOPE, next: at };
    const before = scope && ((flags & HAS_BEFORE) !== 0 ? readText(bytes, scope.next) : { text: undefined, next: scope.next });
    if (scope === undefined || before === undefined) return 'its index holds an invalid scope';
    scopes.push(before.text === undefined ? { scope: scope.text } : { scope: scope.text, before: before.text });
    scoped ||= flags > 1;
    at = before.next;
  }
  if (scoped) index.scopes = scopes;
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
