import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCliOptions } from '../cli-options.ts';
import { getJson, tempDir, TestClient } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 20_000 };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Cli {
  child: ChildProcess;
  port: number;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startCli(t: { after(fn: () => void): void }, args: string[]): Promise<Cli> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', '0', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal })) as Cli['exited'];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    once(lines, 'line').then(([line]) => String(line)),
    exited.then(() => {
      throw new Error(`server exited before listening: ${stderr}`);
    }),
  ]);
  const listening = JSON.parse(first) as { event: string; port: number; url: string };
  assert.equal(listening.event, 'listening');
  assert.equal(listening.url, `http://127.0.0.1:${listening.port}`);
  return { child, port: listening.port, url: listening.url, exited };
}

function upsert(id: string) {
  return { type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'op', entityId: id, data: { id } } } };
}

/** Sends many operations, kills the server with `signal` mid-stream and returns the acknowledged ids. */
async function acknowledgedBeforeKill(cli: Cli, signal: NodeJS.Signals): Promise<Map<string, string>> {
  const client = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync`);
  await client.sync('0/0');
  const acknowledged = new Map<string, string>();
  for (let i = 0; i < 400; i += 1) client.send(upsert(`${signal}-${i}`));
  let killed = false;
  for (;;) {
    let frame;
    try {
      frame = await client.next();
    } catch {
      break; // closed
    }
    if (frame.type === 'operation_complete') acknowledged.set(frame.id, frame.lsn ?? '');
    if (!killed && acknowledged.size >= 20) {
      killed = true;
      cli.child.kill(signal);
    }
  }
  return acknowledged;
}

test('SIGTERM closes sockets with 1001, exits 0 and loses nothing acknowledged', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const first = await startCli(t, ['--data-dir', dataDir]);
  const client = await TestClient.open(`ws://127.0.0.1:${first.port}/api/sync`, t);
  await client.sync('0/0');
  const acknowledged = await acknowledgedBeforeKill(first, 'SIGTERM');
  assert.equal((await client.closed).code, 1001);
  assert.deepEqual(await first.exited, { code: 0, signal: null });
  await assertKept(t, dataDir, acknowledged);
});

test('SIGKILL loses nothing acknowledged either', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const first = await startCli(t, ['--data-dir', dataDir]);
  const acknowledged = await acknowledgedBeforeKill(first, 'SIGKILL');
  assert.equal((await first.exited).signal, 'SIGKILL');
  await assertKept(t, dataDir, acknowledged);
});

async function assertKept(t: { after(fn: () => void): void }, dataDir: string, acknowledged: Map<string, string>) {
  assert.ok(acknowledged.size >= 20, `${acknowledged.size} operations were acknowledged`);
  const second = await startCli(t, ['--data-dir', dataDir]);
  const kept = new Set(
    ((await getJson(`${second.url}/api/entities`)).entities as { entityId: string }[]).map((e) => e.entityId),
  );
  for (const id of acknowledged.keys()) assert.ok(kept.has(id), `acknowledged ${id} was kept`);
  // Re-sent after the restart, an acknowledged operation keeps its LSN and is not applied again.
  const stats = await getJson(`${second.url}/api/stats`);
  const client = await TestClient.open(`ws://127.0.0.1:${second.port}/api/sync`, t);
  const [id, lsn] = [...acknowledged.entries()][0]!;
  client.send(upsert(id));
  assert.deepEqual(await client.next(), { type: 'operation_complete', id, lsn });
  assert.equal((await getJson(`${second.url}/api/stats`)).records, stats.records);
}

test('with the default static root, only the page and its folders are served', BOUNDED, async (t) => {
  const cli = await startCli(t, ['--data-dir', await tempDir(t)]);
  const index = await fetch(`${cli.url}/`);
  assert.equal(index.status, 200, '/ is the demo page');
  assert.match(index.headers.get('content-type') ?? '', /^text\/html/, 'served as HTML');
  await index.body?.cancel();
  for (const path of ['/package.json', '/server/main.ts', '/.git/HEAD', '/node_modules/ws/package.json', '/tsconfig.json', '/dist/%2e%2e/package.json']) {
    const response = await fetch(`${cli.url}${path}`);
    await response.body?.cancel();
    assert.equal(response.status, 404, `${path} is not served`);
  }
});

test('the CLI refuses bad options with exit code 2', BOUNDED, async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', 'eighty'], {
    cwd: ROOT,
    stdio: 'ignore',
  });
  const [code] = await once(child, 'exit');
  assert.equal(code, 2);
});

test('options come from flags, then the environment, then defaults', () => {
  const defaults = parseCliOptions([], {}, '/srv/site');
  assert.ok(!('error' in defaults), 'no error');
  assert.equal(defaults.server.port, 8080);
  assert.equal(defaults.server.host, '127.0.0.1');
  assert.equal(defaults.server.staticDir, '/srv/site');
  assert.equal(defaults.server.batchSize, 1000);
  assert.equal(defaults.token, undefined);

  const fromEnv = parseCliOptions([], { PORT: '9000', DATA_DIR: '/var/sync', SYNC_TOKEN: 's3cret' }, '/srv');
  assert.ok(!('error' in fromEnv), 'no error');
  assert.equal(fromEnv.server.port, 9000);
  assert.equal(fromEnv.server.dataDir, '/var/sync');
  assert.equal(fromEnv.token, 's3cret');

  const flags = parseCliOptions(
    ['--port=0', '--host', '0.0.0.0', '--data-dir', '/d', '--batch-size', '7', '--max-payload', '2048', '--sync-request'],
    { PORT: '9000' },
    '/srv',
  );
  assert.ok(!('error' in flags), 'no error');
  assert.deepEqual(
    [flags.server.port, flags.server.host, flags.server.dataDir, flags.server.batchSize, flags.server.maxPayload, flags.server.syncRequestOnConnect],
    [0, '0.0.0.0', '/d', 7, 2048, true],
  );
  for (const bad of [['--port', '70000'], ['--batch-size', '0'], ['--nope'], ['stray'], ['--port']]) {
    assert.ok('error' in parseCliOptions(bad, {}, '/srv'), `${bad.join(' ')} is refused`);
  }
});
