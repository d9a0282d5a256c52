import { isRecord, parseChange, type Change } from '../src/protocol/change.ts';
import { encodeFrame } from './log-format.ts';

/** What a record's index holds: enough to rebuild the store's indexes without reading the data. */
export interface RecordIndex {
  operationId?: string;
  /** `[entityType, entityId, isUpdate]` of each change, in order. */
  keys: [string, string, boolean][];
}

/**
 * One record's frame: the index `{"op"?, "keys": [[type, id, "update" | "delete"], ...]}`, then
 * the body `[{ "data"?, "timestamp"? }, ...]`, one item per key.
 */
export function encodeRecord(changes: readonly Change[], operationId?: string): Buffer {
  const keys = changes.map((change) => [change.entityType, change.entityId, change.type]);
  const index = operationId === undefined ? { keys } : { op: operationId, keys };
  const body = changes.map((change) => {
    const item: { data?: unknown; timestamp?: number } = {};
    if (change.type === 'update') item.data = change.data;
    if (change.timestamp !== undefined) item.timestamp = change.timestamp;
    return item;
  });
  return encodeFrame(Buffer.from(JSON.stringify(index)), Buffer.from(JSON.stringify(body)), changes.length);
}

/** Reads a record's index; returns why it is not one. */
export function decodeIndex(bytes: Buffer): RecordIndex | string {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'its index is not JSON';
  }
  if (!isRecord(value) || !Array.isArray(value.keys)) return 'its index has no keys';
  const keys: [string, string, boolean][] = [];
  for (const key of value.keys) {
    if (!Array.isArray(key) || typeof key[0] !== 'string' || typeof key[1] !== 'string' || (key[2] !== 'update' && key[2] !== 'delete')) {
      return 'its index holds an invalid key';
    }
    keys.push([key[0], key[1], key[2] === 'update']);
  }
  if (value.op === undefined) return { keys };
  if (typeof value.op !== 'string') return 'its operation id is not a string';
  return { operationId: value.op, keys };
}

/** A record's changes from its index and body; returns why they are not valid. */
export function decodeChanges(index: RecordIndex, body: Buffer): Change[] | string {
  let items: unknown;
  try {
    items = JSON.parse(body.toString('utf8'));
  } catch {
    return 'its body is not JSON';
  }
  if (!Array.isArray(items) || items.length !== index.keys.length) return 'its body does not match its index';
  const changes: Change[] = [];
  for (const [i, [entityType, entityId, isUpdate]] of index.keys.entries()) {
    const item: unknown = items[i];
    if (!isRecord(item)) return 'its body holds an invalid item';
    const change = parseChange({ type: isUpdate ? 'update' : 'delete', entityType, entityId, data: item.data, timestamp: item.timestamp });
    if (typeof change === 'string') return `it holds an invalid change: ${change}`;
    changes.push(change);
  }
  return changes;
}
