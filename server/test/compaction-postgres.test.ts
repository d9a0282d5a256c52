/** Compaction on PostgreSQL: a real cluster, real sockets, two server instances on one database. */
import { after, before, test } from 'node:test';
import { PostgresSyncStore } from '../postgres-store.ts';
import assert from 'node:assert/strict';
import { apply, HOUR, put, readAll, remove, resumePoints } from './compaction-helpers.ts';
import { scopesAcrossCompaction } from './compaction-scenarios.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';

const BOUNDED = { timeout: 60_000 };

let cluster: PostgresCluster;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

test('PostgreSQL: a client at, ahead of, or between the floor and the horizon catches up to the same entities; one below a dropped delete is refused', BOUNDED, async (t) => {
  const store = await PostgresSyncStore.open(await cluster.createDatabase(), { tombstoneRetentionMs: HOUR });
  t.after(() => store.close());
  await resumePoints(store);
});

test('PostgreSQL: two instances on one database compact at once while both take writes; nothing is lost and operation ids stay applied', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const stores = [await PostgresSyncStore.open(url), await PostgresSyncStore.open(url)];
  t.after(() => Promise.all(stores.map((store) => store.close())));
  const expected = new Map<string, unknown>();
  const write = async (n: number) => {
    const entityId = String(n % 25);
    const change = n % 9 === 8 ? remove(entityId) : put(entityId, { n });
    await stores[n % 2]!.append([change], `op-${n}`);
    return { entityId, change };
  };
  // Writes from both instances in order per entity; compactions on both while they go on.
  for (let round = 0; round < 8; round += 1) {
    const batch = await Promise.all(Array.from({ length: 25 }, (_, i) => write(round * 25 + i)));
    for (const { entityId, change } of batch) {
      if (change.type === 'update') expected.set(entityId, change.data);
      else expected.delete(entityId);
    }
    if (round % 2 === 1) await Promise.all(stores.map((store) => store.compact({ now: Date.now() + 2 * HOUR * 1000 })));
  }
  for (const store of stores) {
    assert.deepEqual(apply(await readAll(store)), expected, 'a fresh client of either instance gets the live entities');
  }
  const { changes } = await stores[0]!.stats();
  assert.ok(changes <= 25 * 3, `the log holds about the live entities (${changes} changes), not the 200 written`);
  for (const n of [0, 57, 199]) {
    const repeat = await stores[(n + 1) % 2]!.append([put('x', 'again')], `op-${n}`);
    assert.equal(repeat.duplicate, true, `op-${n} stays applied`);
  }
});

test('PostgreSQL: scopes across compaction: a snapshot never holds an entity outside the reader\'s scopes, and a move out still reaches an old reader', BOUNDED, async (t) => {
  await scopesAcrossCompaction(t, { storeUrl: await cluster.createDatabase() });
});
