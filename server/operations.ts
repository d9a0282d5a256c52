import { isRecord } from '../src/protocol/change.ts';
import type { WireOperation } from '../src/protocol/wire.ts';
import { parseEdit, type Edit } from './edit.ts';

/**
 * Turns a client operation into the edit it makes, stamped with `timestamp`, or returns why it is
 * rejected. `upsert` and `patch` take `{ entityType, entityId, data }` (for `patch`, `data` is a
 * merge patch and must be an object); `delete` takes `{ entityType, entityId }`.
 */
export function operationToEdit(operation: WireOperation, timestamp: number): Edit | string {
  const { type, payload } = operation;
  if (type !== 'upsert' && type !== 'patch' && type !== 'delete') {
    return `unknown operation type ${JSON.stringify(type).slice(0, 60)}`;
  }
  if (!isRecord(payload)) return `${type} needs an object payload`;
  const { entityType, entityId, data } = payload;
  if (type === 'patch' && !isRecord(data)) {
    return `invalid patch payload: data must be an object (an RFC 7386 merge patch), not ${describeJson(data)}`;
  }
  const candidate =
    type === 'upsert' ? { type: 'update', entityType, entityId, data, timestamp }
    : type === 'patch' ? { type: 'patch', entityType, entityId, patch: data, timestamp }
    : { type: 'delete', entityType, entityId, timestamp };
  const edit = parseEdit(candidate);
  return typeof edit === 'string' ? `invalid ${type} payload: ${edit}` : edit;
}

/** The edit with the server's `timestamp` when it carries none. */
export function withTimestamp<T extends Edit>(edit: T, timestamp: number): T {
  return edit.timestamp === undefined ? { ...edit, timestamp } : edit;
}

function describeJson(value: unknown): string {
  if (value === undefined) return 'absent';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
