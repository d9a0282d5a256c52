/**
 * The reference server against the conformance kit (conformance/), on both stores, each with its
 * log placed just below a 32-bit LSN boundary so that the run crosses it; and as the demo runs it,
 * with identities and scopes, checked by the command with a user's token.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { formatResult } from '../../conformance/report.ts';
import { runConformance, type ConformanceReport } from '../../conformance/run.ts';
import { RULES } from '../../conformance/rules.ts';
import { demoScopeOf, demoSecret, demoTokens } from '../demo.ts';
import { jwtAuthenticator } from '../jwt-auth.ts';
import { encodeFileHeader } from '../log-format.ts';
import { LOG_FILE } from '../log-open.ts';
import { createSyncServer } from '../sync-server.ts';
import { startServer, tempDir, wsUrl } from './helpers.ts';
import { answerTo, syncedAs } from './identity-helpers.ts';
import { startPostgresCluster } from './postgres-cluster.ts';

const BOUNDED = { timeout: 120_000 };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/** A new log on the embedded store whose LSNs start 64 KiB below 1/0. */
async function logBelowBoundary(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dataDir = await tempDir(t);
  await writeFile(join(dataDir, LOG_FILE), encodeFileHeader(0xffff_0000n));
  return dataDir;
}

async function assertPasses(url: string, boundaryBytes: number): Promise<void> {
  assertPassed(await runConformance({ url, boundaryBytes }));
}

function assertPassed(report: ConformanceReport): void {
  const printed = report.results.map(formatResult).join('\n');
  assert.deepEqual(report.results.filter((result) => result.status === 'pass').map((result) => result.id), RULES.map((rule) => rule.id), printed);
  assert.match(report.results.find((result) => result.id === 'lsn-boundary')!.detail ?? '', /^crossed from 0\/[0-9A-F]+ to 1\/[0-9A-F]+$/, printed);
  assert.equal(report.leftBehind, undefined);
}

test('the reference server on its embedded log passes every rule of the conformance kit', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await logBelowBoundary(t) });
  await assertPasses(wsUrl(server), 256 * 1024);
});

test('with the demo\'s identities, the command with a user\'s token passes every rule; without one it cannot run', BOUNDED, async (t) => {
  const secret = demoSecret();
  const server = await startServer(t, { dataDir: await logBelowBoundary(t), authenticate: jwtAuthenticator({ secret }), scopeOf: demoScopeOf });
  const { alice, bob } = await demoTokens(secret);
  // A note private to bob: the log holds a record that alice's catch-ups leave out.
  const { client } = await syncedAs(t, server, bob);
  client.send({ type: 'operation', operation: { id: 'bob-1', type: 'upsert', payload: { entityType: 'note', entityId: 'b1', data: { text: 'mine', owner: 'bob', private: true } } } });
  assert.equal((await answerTo(client, 'bob-1')).answer.type, 'operation_complete');
  client.socket.close();
  const kit = (args: string[]) => run(process.execPath, ['--import', 'tsx', 'conformance/cli.ts', wsUrl(server), ...args], { cwd: ROOT });
  const { stdout, stderr } = await kit(['--token', alice!, '--boundary-bytes', String(256 * 1024), '--json']);
  assertPassed(JSON.parse(stdout) as ConformanceReport);
  assert.ok(!(stdout + stderr).includes(alice!), 'the token is never printed');

  const refused = await kit([]).then(() => undefined, (error: { code?: number; stderr?: string }) => error);
  assert.equal(refused?.code, 2);
  assert.match(refused?.stderr ?? '', /cannot run: the server refused the kit's sync, closing with 4001/);
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
