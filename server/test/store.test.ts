import assert from 'node:assert/strict';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareLSN, parseLSN } from '../../src/protocol/lsn.ts';
import { encodeRecord } from '../record-codec.ts';
import { FileSyncStore } from '../store.ts';
import type { StoredRecord } from '../sync-store.ts';
import { diskThatFills, tempDir, update } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 15_000 };

const ALL = { until: 2n ** 64n - 1n, maxChanges: Number.MAX_SAFE_INTEGER };

test('the first record has an LSN above 0/0 and LSNs increase in append order', BOUNDED, async (t) => {
  const { store } = await FileSyncStore.open(await tempDir(t));
  t.after(() => store.close());
  assert.equal(store.head, '0/0');
  const results = await Promise.all([1, 2, 3].map((n) => store.append([update('item', `${n}`, { n })])));
  assert.ok(compareLSN(results[0]!.lsn, '0/0') > 0, 'the first LSN is above 0/0');
  for (let i = 1; i < results.length; i += 1) {
    assert.ok(compareLSN(results[i]!.lsn, results[i - 1]!.lsn) > 0, 'LSNs increase');
  }
  assert.equal(store.head, results.at(-1)!.lsn);
});

test('changesAfter returns only what follows, ordered on the numeric LSN', BOUNDED, async (t) => {
  const { store } = await FileSyncStore.open(await tempDir(t));
  t.after(() => store.close());
  // Enough records that the LSNs cross 0/FF -> 0/100, where string order and numeric order differ.
  while (store.headPosition < 0x400n) await store.append([update('item', `${store.headPosition}`, 1)]);
  const all = await store.changesAfter(0n, ALL);
  const pivot = all.filter((r) => r.position < 0x100n).at(-1)!;
  const after = await store.changesAfter(pivot.position, ALL);
  assert.ok(after.some((r) => r.lsn < pivot.lsn), 'some later LSN sorts before the pivot as a string');
  assert.deepEqual(after, all.filter((r) => compareLSN(r.lsn, pivot.lsn) > 0));
  assert.equal(await store.countChangesAfter(pivot.position, store.headPosition), after.length);
});

test('reads never split a record and stop at the change budget', BOUNDED, async (t) => {
  const { store } = await FileSyncStore.open(await tempDir(t));
  t.after(() => store.close());
  await store.append([update('a', '1', 1), update('a', '2', 2)]);
  await store.append([update('a', '3', 3), update('a', '4', 4), update('a', '5', 5)]);
  await store.append([update('a', '6', 6)]);
  const firstRead = await store.changesAfter(0n, { until: store.headPosition, maxChanges: 4 });
  assert.deepEqual(firstRead.map((r) => r.changes.length), [2]);
  const big = await store.changesAfter(firstRead[0]!.position, { until: store.headPosition, maxChanges: 1 });
  assert.deepEqual(big.map((r) => r.changes.length), [3], 'a record bigger than the budget comes alone');
  const bounded = await store.changesAfter(0n, { until: big[0]!.position, maxChanges: 100 });
  assert.equal(bounded.length, 2, 'nothing past `until`');
});

test('reopening rebuilds records, entities and applied operations from the log', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const first = (await FileSyncStore.open(dir)).store;
  await first.append([update('task', '1', { title: 'a' })], 'op-1');
  await first.append([update('task', '2', { title: 'b' })]);
  await first.append([{ type: 'delete', entityType: 'task', entityId: '1' }], 'op-2');
  const before = { stats: await first.stats(), records: await first.changesAfter(0n, ALL) };
  await first.close();

  const { store, truncatedBytes } = await FileSyncStore.open(dir);
  t.after(() => store.close());
  assert.equal(truncatedBytes, 0);
  assert.deepEqual(await store.stats(), before.stats);
  assert.deepEqual(await store.changesAfter(0n, ALL), before.records);
  assert.deepEqual((await store.entities({ limit: 100 })).entities, [{ entityType: 'task', entityId: '2', data: { title: 'b' } }]);
  const again = await store.append([update('task', '1', { title: 'again' })], 'op-1');
  assert.equal(again.duplicate, true);
  assert.equal(again.lsn, before.records[0]!.lsn);
  assert.equal((await store.stats()).records, before.stats.records);
});

test('a torn last record is cut away on open, reported, and the log stays appendable', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const first = (await FileSyncStore.open(dir)).store;
  const kept = await first.append([update('note', '1', 'kept')]);
  await first.close();
  const file = join(dir, 'sync.log');
  // The first 30 bytes of a record: a write the crash interrupted.
  await appendFile(file, encodeRecord([update('note', '2', 'torn')]).subarray(0, 30));

  const { store, truncatedBytes, report } = await FileSyncStore.open(dir);
  t.after(() => store.close());
  assert.equal(truncatedBytes, 30, 'the torn record was cut');
  assert.match(String(report.torn?.reason), /runs past the end of the file/, 'and reported, saying why');
  assert.equal(store.head, kept.lsn);
  assert.equal((await stat(file)).size, Number(parseLSN(kept.lsn)), 'the file ends at the kept record (its LSN)');
  const next = await store.append([update('note', '3', 'next')]);
  assert.ok(compareLSN(next.lsn, kept.lsn) > 0, 'the next LSN follows the kept one');
  assert.deepEqual((await store.changesAfter(0n, ALL)).map((r) => r.changes[0]!.entityId), ['1', '3']);
});

test('a file that is not a sync log refuses to open, saying so', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'sync.log'), 'not json\n{"changes":[]}\n and more than thirty-two bytes');
  await assert.rejects(FileSyncStore.open(dir), /does not start with SYNCLOG2: not a sync log/);
});

test('an operation id sent twice at once is applied once', BOUNDED, async (t) => {
  const { store } = await FileSyncStore.open(await tempDir(t));
  t.after(() => store.close());
  const [a, b] = await Promise.all([
    store.append([update('x', '1', 1)], 'same'),
    store.append([update('x', '1', 2)], 'same'),
  ]);
  assert.equal(a!.lsn, b!.lsn);
  assert.deepEqual([a!.duplicate, b!.duplicate], [false, true]);
  assert.equal((await store.stats()).records, 1);
  assert.deepEqual((await store.entities({ limit: 100 })).entities, [{ entityType: 'x', entityId: '1', data: 1 }]);
});

test('listeners see every durable record once, in order, before its append resolves', BOUNDED, async (t) => {
  const { store } = await FileSyncStore.open(await tempDir(t));
  t.after(() => store.close());
  const seen: StoredRecord[] = [];
  store.subscribe((record) => seen.push(record));
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      store.append([update('n', `${i}`, i)]).then((result) => {
        assert.ok(seen.some((record) => record.lsn === result.lsn), 'listeners saw the record first');
        return result;
      }),
    ),
  );
  assert.deepEqual(seen.map((record) => record.lsn), results.map((result) => result.lsn));
  assert.deepEqual(seen.map((record) => record.changes[0]!.entityId), results.map((_, i) => `${i}`));
});

test('a write error fails the store for good, once, and a reopen keeps exactly what was durable', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const disk = diskThatFills();
  const { store } = await FileSyncStore.open(dir, { openFile: disk.openFile });
  t.after(() => store.close());
  const failures: Error[] = [];
  store.onFailure((error) => failures.push(error));
  const seen: StoredRecord[] = [];
  store.subscribe((record) => seen.push(record));
  const kept = await store.append([update('n', '1', 1)], 'op-1');
  assert.equal(store.failure, undefined, 'no failure yet');

  disk.fillDisk();
  const settled = await Promise.allSettled([
    store.append([update('n', '2', 2)], 'op-2'),
    store.append([update('n', '3', 3)]),
  ]);
  for (const outcome of settled) {
    assert.equal(outcome.status, 'rejected', 'an append that did not reach the disk is refused');
    assert.match(String((outcome as PromiseRejectedResult).reason), /store unavailable: ENOSPC/, 'the reason names the disk error');
  }
  assert.equal(failures.length, 1, 'the failure listeners heard once');
  assert.match(failures[0]!.message, /ENOSPC/, 'with the disk error');
  assert.equal(store.failure, failures[0], 'failure is set');
  assert.deepEqual(seen.map((record) => record.lsn), [kept.lsn], 'no listener saw an undurable record');
  assert.equal(store.head, kept.lsn, 'the head did not move');
  await assert.rejects(store.append([update('n', '4', 4)], 'op-4'), /store unavailable/, 'later appends are refused');
  const repeat = await store.append([update('n', '1', 1)], 'op-1');
  assert.deepEqual(repeat, { ...kept, duplicate: true }, 'a durable operation is still answered');
  assert.equal(failures.length, 1, 'and the listeners are not called again');
  await store.close();

  const reopened = await FileSyncStore.open(dir);
  t.after(() => reopened.store.close());
  assert.equal((await stat(join(dir, 'sync.log'))).size, Number(kept.position), 'the failed write was cut away');
  assert.equal(reopened.truncatedBytes, 0, 'so nothing was left torn');
  assert.equal(reopened.store.head, kept.lsn, 'the log ends at the last durable record');
  assert.deepEqual((await reopened.store.entities({ limit: 100 })).entities, [{ entityType: 'n', entityId: '1', data: 1 }]);
  const retried = await reopened.store.append([update('n', '2', 2)], 'op-2');
  assert.equal(retried.duplicate, false, 'the refused operation is applied when re-sent');
});
