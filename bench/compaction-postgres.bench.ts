/**
 * Compaction of the PostgreSQL store (a throwaway cluster on this machine): many updates to few
 * entities (by default 100,000 to 1,000, each an operation with its id, written through the
 * store as servers write them), read by a fresh client as the server's catch-up reads it, before
 * and after `compact()`; and the size on disk of the store's tables and indexes before, after
 * compacting and vacuuming, and after as many updates again (compacted and vacuumed too), which
 * says whether the size follows the live data or the history. Nothing here asserts a time.
 */
import pg from 'pg';
import { PostgresSyncStore } from '../server/postgres-store.ts';
import { startPostgresCluster } from '../server/test/postgres-cluster.ts';
import type { Row } from './lib/harness.ts';

const UPDATES = Number(process.env.BENCH_PG_COMPACTION_UPDATES ?? 100_000);
const ENTITIES = 1000;
const IN_FLIGHT = 256;
const TABLES = ['sync_change_log', 'sync_change_scopes', 'sync_writes', 'sync_entities', 'sync_pending'];

async function write(store: PostgresSyncStore, from: number): Promise<void> {
  let next = from;
  const lane = async () => {
    while (next < from + UPDATES) {
      const i = next++;
      const data = { title: `task ${i % ENTITIES}`, done: i % 3 === 0, n: i, text: 'lorem ipsum dolor sit amet '.repeat(3) };
      await store.append([{ type: 'update', entityType: 'task', entityId: `t-${i % ENTITIES}`, data }], `op-${i}`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

/** A fresh client's catch-up as the server reads it: changes and ms. */
async function catchUp(store: PostgresSyncStore): Promise<{ changes: number; ms: number }> {
  const started = performance.now();
  const floor = await store.compactionFloor();
  const until = await store.latestPosition();
  let changes = 0;
  for (let cursor = 0n; ;) {
    const page = await store.changesAfter(cursor, { until, maxChanges: 1000, floor });
    const last = page.at(-1);
    if (!last) break;
    for (const record of page) changes += record.changes.length;
    cursor = last.position;
  }
  return { changes, ms: performance.now() - started };
}

async function tableSizes(client: pg.Client): Promise<string> {
  const result = await client.query<{ name: string; bytes: string }>(
    'SELECT name, pg_total_relation_size(name::regclass)::text AS bytes FROM unnest($1::text[]) AS name',
    [TABLES],
  );
  return result.rows.map((row) => `${row.name} ${(Number(row.bytes) / 2 ** 20).toFixed(1)}`).join(', ');
}

async function tableBytes(client: pg.Client): Promise<number> {
  if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${await tableSizes(client)} MiB\n`);
  const result = await client.query<{ bytes: string }>(
    'SELECT sum(pg_total_relation_size(name::regclass))::text AS bytes FROM unnest($1::text[]) AS name',
    [TABLES],
  );
  return Number(result.rows[0]!.bytes);
}

async function compactAndVacuum(store: PostgresSyncStore, client: pg.Client): Promise<number> {
  const started = performance.now();
  await store.compact();
  const ms = performance.now() - started;
  for (const table of TABLES) await client.query(`VACUUM ${table}`);
  return ms;
}

export async function run(): Promise<Row[]> {
  const cluster = await startPostgresCluster({ durable: true });
  try {
    const url = await cluster.createDatabase('compaction');
    const store = await PostgresSyncStore.open(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await write(store, 0);
      const sizeBefore = await tableBytes(client);
      const before = await catchUp(store);
      const compactMs = await compactAndVacuum(store, client);
      const after = await catchUp(store);
      const sizeAfter = await tableBytes(client);
      await write(store, UPDATES);
      const sizeTwiceBefore = await tableBytes(client);
      await compactAndVacuum(store, client);
      const sizeTwice = await tableBytes(client);
      process.stderr.write(
        `compaction (postgres): catch-up ${before.changes} -> ${after.changes} changes, ${before.ms.toFixed(0)} -> ${after.ms.toFixed(0)} ms; ` +
          `size ${(sizeBefore / 2 ** 20).toFixed(1)} -> ${(sizeAfter / 2 ** 20).toFixed(1)} MiB; after as many again ` +
          `${(sizeTwiceBefore / 2 ** 20).toFixed(1)} -> ${(sizeTwice / 2 ** 20).toFixed(1)} MiB; compact ${compactMs.toFixed(0)} ms\n`,
      );
      const label = `PostgreSQL, ${UPDATES.toLocaleString('en-US')} updates to ${ENTITIES.toLocaleString('en-US')} entities, each an operation with its id`;
      const baselineName = 'same store before compaction';
      return [
        { what: `compaction (${label}): fresh client's catch-up, changes`, ours: after.changes, baseline: before.changes, unit: '', better: 'lower', baselineName },
        { what: 'the same: fresh client\'s catch-up time', ours: after.ms, baseline: before.ms, unit: 'ms', better: 'lower', baselineName },
        { what: 'the same: tables and indexes on disk, compacted and vacuumed (operation ids kept)', ours: sizeAfter / 2 ** 20, baseline: sizeBefore / 2 ** 20, unit: 'MiB', better: 'lower', baselineName },
        { what: `the same after ${UPDATES.toLocaleString('en-US')} updates more, compacted and vacuumed again`, ours: sizeTwice / 2 ** 20, baseline: sizeTwiceBefore / 2 ** 20, unit: 'MiB', better: 'lower', baselineName: 'those updates written, before compaction' },
        { what: 'the same: time to compact', ours: compactMs, baseline: null, unit: 'ms', better: 'lower' },
      ];
    } finally {
      await client.end();
      await store.close();
    }
  } finally {
    await cluster.destroy();
  }
}
