/** The check of an outbox record that crosses a boundary (page to worker, tab to tab). */
import { isRecord } from './change.ts';
import { parseEffect, type Effect } from './effects.ts';
import { fail, finite, list, nonEmpty } from './shape.ts';
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
    ...(value.effects === undefined ? {} : { effects: parseEffects(list(value, 'effects')) }),
    ...(value.group === undefined ? {} : { group: groupKey(value.group) }),
  };
}

/** Declared effects, each checked; throws a `ShapeError` naming the first that is not one. */
export function parseEffects(items: readonly unknown[]): Effect[] {
  return items.map((item, index) => {
    const effect = isRecord(item) ? parseEffect(item.type, item) : 'an effect must be an object';
    if (typeof effect === 'string') fail(`effect #${index}: ${effect}`);
    return effect;
  });
}

function groupKey(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail('group must be a positive integer');
  return value;
}
