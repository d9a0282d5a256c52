/** Compaction on PostgreSQL: a real cluster, real sockets, two server instances on one database. */
import { after, before, test } from 'node:test';
import { PostgresSyncStore } from '../postgres-store.ts';
import { HOUR, resumePoints } from './compaction-helpers.ts';
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
