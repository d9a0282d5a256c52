/**
 * The reference server against the conformance kit (conformance/), on both stores, each with its
 * log placed just below a 32-bit LSN boundary so that the run crosses it.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatResult } from '../../conformance/report.ts';
import { runConformance } from '../../conformance/run.ts';
import { RULES } from '../../conformance/rules.ts';
import { encodeFileHeader } from '../log-format.ts';
import { LOG_FILE } from '../log-open.ts';
import { createSyncServer } from '../sync-server.ts';
import { startServer, tempDir, wsUrl } from './helpers.ts';
import { startPostgresCluster } from './postgres-cluster.ts';

const BOUNDED = { timeout: 120_000 };

async function assertPasses(url: string, boundaryBytes: number): Promise<void> {
  const report = await runConformance({ url, boundaryBytes });
  const printed = report.results.map(formatResult).join('\n');
  assert.deepEqual(report.results.filter((result) => result.status === 'pass').map((result) => result.id), RULES.map((rule) => rule.id), printed);
  assert.match(report.results.find((result) => result.id === 'lsn-boundary')!.detail ?? '', /^crossed from 0\/[0-9A-F]+ to 1\/[0-9A-F]+$/, printed);
  assert.equal(report.leftBehind, undefined);
}

test('the reference server on its embedded log passes every rule of the conformance kit', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  // A new log whose LSNs start 64 KiB below 1/0.
  await writeFile(join(dataDir, LOG_FILE), encodeFileHeader(0xffff_0000n));
  const server = await startServer(t, { dataDir });
  await assertPasses(wsUrl(server), 256 * 1024);
});

test('the reference server on PostgreSQL passes every rule of the conformance kit', BOUNDED, async (t) => {
  // The write-ahead log in 1 MiB segments, starting 4 MiB below 1/0: the server's own set-up and
  // the rules before the boundary's write less than that.
  const cluster = await startPostgresCluster({ walSegmentMiB: 1, walStart: 0xffc0_0000n });
  t.after(() => cluster.destroy());
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, storeUrl: cluster.url() });
  t.after(() => server.close());
  await assertPasses(wsUrl(server), 8 * 1024 * 1024);
});
