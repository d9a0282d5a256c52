import { isRecord, parseChange, type Change } from '../src/protocol/change.ts';
import type { WireOperation } from '../src/protocol/wire.ts';

/**
 * Turns a client operation into the change it makes, stamped with `timestamp`, or returns why it
 * is rejected. `upsert` takes `{ entityType, entityId, data }`; `delete` takes
 * `{ entityType, entityId }`.
 */
export function operationToChange(operation: WireOperation, timestamp: number): Change | string {
  const { type, payload } = operation;
  if (type !== 'upsert' && type !== 'delete') {
    return `unknown operation type ${JSON.stringify(type).slice(0, 60)}`;
  }
  if (!isRecord(payload)) return `${type} needs an object payload`;
  const candidate =
    type === 'upsert'
      ? { type: 'update', entityType: payload.entityType, entityId: payload.entityId, data: payload.data, timestamp }
      : { type: 'delete', entityType: payload.entityType, entityId: payload.entityId, timestamp };
  const change = parseChange(candidate);
  return typeof change === 'string' ? `invalid ${type} payload: ${change}` : change;
}

/** The change with the server's `timestamp` when it carries none. */
export function withTimestamp(change: Change, timestamp: number): Change {
  return change.timestamp === undefined ? { ...change, timestamp } : change;
}
