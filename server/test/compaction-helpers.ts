import assert from 'node:assert/strict';
import type { Change } from '../../src/protocol/change.ts';
import { LogCompactedError, type StoredRecord, type SyncStore } from '../sync-store.ts';

export const HOUR = 3_600_000;

export function put(entityId: string, data: unknown, timestamp = Date.now()): Change {
  return { type: 'update', entityType: 'item', entityId, data, timestamp };
}

export function remove(entityId: string, timestamp = Date.now()): Change {
  return { type: 'delete', entityType: 'item', entityId, timestamp };
}

/** Every record after `after`, read page by page as a catch-up does (refused as one would be). */
export async function readAll(store: SyncStore, after = 0n): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  const until = await store.latestPosition();
  const floor = await store.compactionFloor();
  if (after !== 0n && after < floor) throw new LogCompactedError(after, floor);
  for (let cursor = after; ;) {
    const page = await store.changesAfter(cursor, { until, maxChanges: 7, floor });
    if (page.length === 0) return records;
    records.push(...page);
    cursor = page.at(-1)!.position;
  }
}

/** The entities a client holds after applying `records` on top of `held`. */
export function apply(records: readonly StoredRecord[], held = new Map<string, unknown>()): Map<string, unknown> {
  for (const record of records) {
    for (const change of record.changes) {
      if (change.type === 'update') held.set(change.entityId, change.data);
      else held.delete(change.entityId);
    }
  }
  return held;
}

/**
 * On a store with a retention of one hour: clients at, ahead of, or between the floor and the
 * horizon catch up to the same entities as without compaction; one below a dropped delete is refused.
 */
export async function resumePoints(store: SyncStore): Promise<void> {
  const old = Date.now() - 2 * HOUR;
  await store.append([put('a', 1, old), put('b', 1, old), put('c', 1, old)]);
  const early = store.headPosition;
  await store.append([remove('a', old)]);
  const afterOldDelete = store.headPosition;
  await store.append([put('b', 2)]);
  const middle = store.headPosition;
  await store.append([remove('b')]);
  await store.append([put('c', 2)]);
  const horizon = store.headPosition;
  await store.append([put('c', 3)]);
  const ahead = store.headPosition;
  const expected = apply(await readAll(store));
  const heldAt = async (position: bigint) => apply((await readAll(store)).filter((record) => record.position <= position));
  const held = { middle: await heldAt(middle), afterOldDelete: await heldAt(afterOldDelete), horizon: await heldAt(horizon), ahead: await heldAt(ahead), early: await heldAt(early) };
  const report = await store.compact({ horizon });
  assert.equal(report.removalsDropped, 1, 'the delete older than the retention');
  assert.equal(report.floor, (await store.compact({ horizon: 0n })).floor);
  for (const [name, position] of [['middle', middle], ['afterOldDelete', afterOldDelete], ['horizon', horizon], ['ahead', ahead]] as const) {
    assert.deepEqual(apply(await readAll(store, position), held[name]), expected, `a client at ${name} catches up`);
  }
  assert.deepEqual(apply(await readAll(store, 0n)), expected, 'a fresh client too');
  await assert.rejects(readAll(store, early), LogCompactedError, 'below the dropped delete: the client must start over');
  // The retained delete of b is dropped once it is older than the retention.
  const later = await store.compact({ horizon, now: Date.now() + 2 * HOUR });
  assert.equal(later.removalsDropped, 1);
  await assert.rejects(readAll(store, middle), LogCompactedError);
  assert.deepEqual(apply(await readAll(store, horizon), held.horizon), expected);
}
