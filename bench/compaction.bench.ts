/**
 * Compaction of the embedded log: a log of many updates to few entities (by default 1,000,000
 * updates to 1,000 entities; once each with an operation id, as clients write, once without, as
 * `POST /api/changes` writes), read by a fresh client
 * as the server's catch-up reads it (pages of 1,000 changes), before and after `compact()`, and
 * the log file's size before and after. Same data, same run. Nothing here asserts a time.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFileHeader } from '../server/log-format.ts';
import { encodeRecord } from '../server/record-codec.ts';
import { FileSyncStore } from '../server/store.ts';
import type { Row } from './lib/harness.ts';

const UPDATES = Number(process.env.BENCH_COMPACTION_UPDATES ?? 1_000_000);
const ENTITIES = 1000;

async function writeLog(dir: string, withIds: boolean): Promise<void> {
  const out = createWriteStream(join(dir, 'sync.log'));
  out.write(encodeFileHeader(0n));
  for (let i = 0; i < UPDATES; i += 1) {
    const data = { title: `task ${i % ENTITIES}`, done: i % 3 === 0, n: i, text: 'lorem ipsum dolor sit amet '.repeat(3) };
    const frame = encodeRecord([{ type: 'update', entityType: 'task', entityId: `t-${i % ENTITIES}`, data, timestamp: Date.now() }], withIds ? `op-${i}` : undefined);
    if (!out.write(frame)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}

/** A fresh client's catch-up as the server reads it: changes and ms. */
async function catchUp(store: FileSyncStore): Promise<{ changes: number; ms: number }> {
  const started = performance.now();
  const floor = await store.compactionFloor();
  let changes = 0;
  for (let cursor = 0n; ;) {
    const page = await store.changesAfter(cursor, { until: store.headPosition, maxChanges: 1000, floor });
    const last = page.at(-1);
    if (!last) break;
    for (const record of page) changes += record.changes.length;
    cursor = last.position;
  }
  return { changes, ms: performance.now() - started };
}

export async function run(): Promise<Row[]> {
  return [...(await measure(true)), ...(await measure(false))];
}

async function measure(withIds: boolean): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'sync-bench-compaction-'));
  try {
    await writeLog(dir, withIds);
    const { store } = await FileSyncStore.open(dir);
    const sizeBefore = (await stat(join(dir, 'sync.log'))).size;
    const before = await catchUp(store);
    const started = performance.now();
    await store.compact();
    const compactMs = performance.now() - started;
    const after = await catchUp(store);
    const sizeAfter = (await stat(join(dir, 'sync.log'))).size;
    await store.close();
    const label = `${UPDATES.toLocaleString('en-US')} updates to ${ENTITIES.toLocaleString('en-US')} entities, ${withIds ? 'each an operation with its id' : 'without operation ids'}`;
    const baselineName = 'same log before compaction';
    return [
      { what: `compaction (${label}): fresh client's catch-up, changes`, ours: after.changes, baseline: before.changes, unit: '', better: 'lower', baselineName },
      { what: 'the same: fresh client\'s catch-up time', ours: after.ms, baseline: before.ms, unit: 'ms', better: 'lower', baselineName },
      { what: `the same: log file size${withIds ? ' (operation ids kept)' : ''}`, ours: sizeAfter / 2 ** 20, baseline: sizeBefore / 2 ** 20, unit: 'MiB', better: 'lower', baselineName },
      { what: 'the same: time to compact', ours: compactMs, baseline: null, unit: 'ms', better: 'lower' },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
