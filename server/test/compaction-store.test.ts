import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Change } from '../../src/protocol/change.ts';
import { FileSyncStore } from '../store.ts';
import { LogCompactedError, type StoredRecord, type SyncStore } from '../sync-store.ts';
import { tempDir } from './helpers.ts';

const BOUNDED = { timeout: 30_000 };
const HOUR = 3_600_000;

function put(entityId: string, data: unknown, timestamp = Date.now()): Change {
  return { type: 'update', entityType: 'item', entityId, data, timestamp };
}

function remove(entityId: string, timestamp = Date.now()): Change {
  return { type: 'delete', entityType: 'item', entityId, timestamp };
}

/** Every record after `after`, read page by page as a catch-up does. */
export async function readAll(store: SyncStore, after = 0n): Promise<StoredRecord[]> {
  const records: StoredRecord[] = [];
  for (let cursor = after; ;) {
    const page = await store.changesAfter(cursor, { until: store.headPosition, maxChanges: 7 });
    if (page.length === 0) return records;
    records.push(...page);
    cursor = page.at(-1)!.position;
  }
}

/** The entities a client holds after applying `records` on top of `held`. */
function apply(records: readonly StoredRecord[], held = new Map<string, unknown>()): Map<string, unknown> {
  for (const record of records) {
    for (const change of record.changes) {
      if (change.type === 'update') held.set(change.entityId, change.data);
      else held.delete(change.entityId);
    }
  }
  return held;
}

test('compaction keeps the latest change of each entity below the horizon, at its own LSN, and the file shrinks', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const { store } = await FileSyncStore.open(dir);
  t.after(() => store.close());
  for (let round = 0; round < 200; round += 1) {
    await Promise.all(Array.from({ length: 10 }, (_, id) => store.append([put(`${id}`, { round, pad: 'x'.repeat(100) })], `op-${round}-${id}`)));
  }
  const before = await readAll(store);
  const latest = new Map(before.map((record) => [record.changes[0]!.entityId, record]));
  const sizeBefore = (await stat(join(dir, 'sync.log'))).size;
  const head = store.head;
  const report = await store.compact();
  assert.equal(report.compacted, true);
  assert.equal(report.changesBefore, 2000);
  assert.equal(report.changesAfter, 10);
  assert.equal(store.head, head, 'the head stays');
  const after = await readAll(store);
  assert.deepEqual(after.map((record) => [record.lsn, record.changes]), [...latest.values()].sort((a, b) => Number(a.position - b.position)).map((record) => [record.lsn, record.changes]));
  const sizeAfter = (await stat(join(dir, 'sync.log'))).size;
  assert.ok(sizeAfter * 5 < sizeBefore, `the file shrinks: ${sizeBefore} -> ${sizeAfter} bytes`);
  // Operation ids stay applied, answered at the LSN they were applied at.
  const repeat = await store.append([put('0', { round: -1 })], 'op-3-0');
  assert.equal(repeat.duplicate, true);
  assert.equal(repeat.lsn, before[30]!.lsn);
  // Appends go on at the same LSNs the log would have given, and survive a reopen.
  const next = await store.append([put('0', { round: 'after' })], 'op-after');
  await store.close();
  const reopened = (await FileSyncStore.open(dir)).store;
  t.after(() => reopened.close());
  assert.equal(reopened.head, next.lsn);
  assert.deepEqual(apply(await readAll(reopened)), apply([...before, { lsn: next.lsn, position: next.position, changes: [put('0', { round: 'after' })] }]));
  assert.equal((await reopened.append([put('1', 1)], 'op-199-9')).duplicate, true, 'ids listed by compaction stay applied after a reopen');
});

test('a client at, ahead of, or between the floor and the horizon catches up to the same entities; one below a dropped delete is refused', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const { store } = await FileSyncStore.open(dir, { tombstoneRetentionMs: HOUR });
  t.after(() => store.close());
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
});
