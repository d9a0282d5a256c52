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
}

/** Marks "no operation id" in the index. */
const NO_OPERATION = 0xffff;
/** Marks "an operation id and its fingerprint follow". */
const FINGERPRINTED = 0xfffe;
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
export function encodeRecord(changes: readonly Change[], operationId?: string, scopes?: readonly ChangeScope[], fingerprint?: string): Buffer {
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
  return encodeFrame(index, Buffer.from(JSON.stringify(changes)), changes.length);
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
