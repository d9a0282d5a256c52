/** The check of an outbox record that crosses a boundary (page to worker, tab to tab). */
import { isRecord } from './change.ts';
import { fail, finite, nonEmpty } from './shape.ts';
import type { QueuedOperation } from './state.ts';

/** The record, rebuilt from its checked fields; throws a `ShapeError`. */
export function parseQueuedOperation(value: unknown): QueuedOperation {
  if (!isRecord(value)) fail('operation must be an object');
  return {
    id: nonEmpty(value, 'id'),
    type: nonEmpty(value, 'type'),
    payload: value.payload,
    priority: finite(value, 'priority', 0),
    seq: finite(value, 'seq', 0),
    queuedAt: finite(value, 'queuedAt', 0),
  };
}
