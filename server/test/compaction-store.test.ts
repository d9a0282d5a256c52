import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileSyncStore } from '../store.ts';
import { apply, HOUR, put, readAll, resumePoints } from './compaction-helpers.ts';
import { tempDir } from './helpers.ts';

const BOUNDED = { timeout: 30_000 };

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
  const { store } = await FileSyncStore.open(await tempDir(t), { tombstoneRetentionMs: HOUR });
  t.after(() => store.close());
  await resumePoints(store);
});
