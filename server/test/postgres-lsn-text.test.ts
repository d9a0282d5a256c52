/**
 * PostgreSQL's LSNs as the store orders them: by value, never as text. The log starts just below
 * 1/0, so its LSNs cross both the 32-bit boundary and a change in their number of digits
 * (1/FFF0 to 1/10000 sorts the other way as text).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareLSN } from '../../src/protocol/lsn.ts';
import { databaseState, ModelClient, startInstance, upsert } from './postgres-helpers.ts';
import { startPostgresCluster } from './postgres-cluster.ts';

test('across 1/0 and changes in the number of digits, two instances deliver live and catch up in LSN order, nothing lost or repeated', { timeout: 120_000 }, async (t) => {
  const cluster = await startPostgresCluster({ walSegmentMiB: 1, walStart: 0xffe0_0000n });
  t.after(() => cluster.destroy());
  const url = cluster.url();
  const writing = await startInstance(t, url);
  const reading = await startInstance(t, url);
  const writer = await ModelClient.open(t, writing);
  const live = await ModelClient.open(t, reading);
  const start = writer.lsn;
  // Bursts of writes, each big enough to move the log on by a few KiB, until it is well past 1/10000.
  let n = 0;
  while (compareLSN(writer.lsn, '1/20000') < 0) {
    for (let i = 0; i < 20; i += 1, n += 1) writer.send(upsert(`w${n}`, `e${n % 7}`, { n, fill: 'x'.repeat(4000) }));
    await writer.until(() => writer.acks.size === n, 30_000, `${n} acknowledgements`);
  }
  const db = await databaseState(url);
  assert.ok(compareLSN(start, '1/0') < 0, `the log started below 1/0 (${start})`);
  await live.reach(db.head);
  const inOrder = (lsns: string[]) => lsns.every((lsn, i) => i === 0 || compareLSN(lsn, lsns[i - 1]!) > 0);
  assert.deepEqual(db.lsns.filter((lsn) => compareLSN(lsn, start) > 0).sort(compareLSN), db.lsns.filter((lsn) => compareLSN(lsn, start) > 0), 'the test reads the log in value order');
  assert.ok(inOrder(live.applied), 'live: batches in LSN order');
  assert.deepEqual(live.repeats, [], 'live: nothing sent twice');
  assert.deepEqual(live.changes, writer.changes, 'live on the other instance: every change once, in order');
  const caughtUp = await ModelClient.open(t, reading, start);
  assert.ok(inOrder(caughtUp.applied), 'catch-up: batches in LSN order');
  assert.deepEqual(caughtUp.repeats, []);
  assert.deepEqual(caughtUp.changes, writer.changes, 'catch-up from below 1/0: every change once, in order');
  assert.deepEqual(caughtUp.entities, db.entities);
});
