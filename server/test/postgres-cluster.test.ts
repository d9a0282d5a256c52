/** The throwaway test cluster cleans up after itself, also when its process is ended by a signal or killed. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { eventually } from './helpers.ts';
import { startPostgresCluster } from './postgres-cluster.ts';

const BOUNDED = { timeout: 60_000 };
const CHILD = fileURLToPath(new URL('./cluster-child.ts', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startChild(t: { after(fn: () => void): void }) {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    exited.then((how) => {
      throw new Error(`the child exited before starting its cluster (${JSON.stringify(how)})`);
    }),
  ]);
  const started = JSON.parse(first) as { dir: string; postmaster: number };
  return { child, exited, ...started };
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`a process ended by ${signal} stops and deletes its cluster, and still dies of the signal`, BOUNDED, async (t) => {
    const { child, exited, dir, postmaster } = await startChild(t);
    assert.ok(existsSync(dir) && alive(postmaster), 'the cluster runs');
    child.kill(signal);
    assert.deepEqual(await exited, { code: null, signal }, `the process died of ${signal}`);
    assert.ok(!existsSync(dir), 'its directory is gone');
    await eventually(() => !alive(postmaster), 10_000, 'the postmaster stopped');
  });
}

test('a cluster left behind by a killed process is swept by the next start; clusters take no TCP connections', BOUNDED, async (t) => {
  const { child, exited, dir, postmaster } = await startChild(t);
  child.kill('SIGKILL');
  await exited;
  // SIGKILL left the cluster running (unless another test file's start swept it already).
  const next = await startPostgresCluster();
  t.after(() => next.destroy());
  assert.ok(!existsSync(dir), 'the stale directory was deleted');
  await eventually(() => !alive(postmaster), 10_000, 'the stale postmaster was stopped');
  const viaSocket = new pg.Client({ connectionString: next.url() });
  await viaSocket.connect();
  await viaSocket.end();
  const viaTcp = new pg.Client({ host: '127.0.0.1', port: next.port, user: 'postgres', connectionTimeoutMillis: 2000 });
  viaTcp.on('error', () => {});
  await assert.rejects(viaTcp.connect(), 'no TCP listener');
});
