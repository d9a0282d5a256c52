import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseCliOptions } from '../cli-options.ts';
import { getJson, startCli, tempDir, TestClient, type Cli } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 20_000 };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

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

/** `resend` builds the operation exactly as it was sent (the same id with another payload would be refused as a reused id). */
async function assertKept(t: { after(fn: () => void): void }, dataDir: string, acknowledged: Map<string, string>, resend: (id: string) => unknown = upsert): Promise<Cli> {
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
  await client.sync(lsn);
  client.send(resend(id));
  assert.deepEqual(await client.next(), { type: 'operation_complete', id, lsn });
  assert.equal((await getJson(`${second.url}/api/stats`)).records, stats.records);
  return second;
}

test('a disk error closes the sockets with 1011, exits 1 saying why, and loses nothing acknowledged', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  // 128 KiB of log, then EFBIG in the middle of a group of appends.
  const cli = await startCli(t, ['--data-dir', dataDir], { fileSizeLimit: 256 });
  const client = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync`, t);
  await client.sync('0/0');
  const blob = 'x'.repeat(2048);
  const operation = (id: string) => ({ type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'op', entityId: id, data: blob } } });
  const sent: string[] = [];
  const acknowledged = new Map<string, string>();
  // Some acknowledged one by one (each its own write), then a burst that crosses the limit.
  for (let i = 0; i < 20; i += 1) {
    sent.push(`disk-${i}`);
    client.send(operation(`disk-${i}`));
    const frames = await client.until('operation_complete');
    const done = frames.at(-1)!;
    if (done.type === 'operation_complete') acknowledged.set(done.id, done.lsn ?? '');
  }
  for (let i = 20; i < 200; i += 1) {
    sent.push(`disk-${i}`);
    client.send(operation(`disk-${i}`));
  }
  for (;;) {
    let frame;
    try {
      frame = await client.next(3000);
    } catch {
      break; // closed, or (the defect) left open without answers
    }
    assert.notEqual(frame.type, 'error', `no generic error frame: ${JSON.stringify(frame)}`);
    if (frame.type === 'operation_complete') acknowledged.set(frame.id, frame.lsn ?? '');
  }
  const closed = await Promise.race([
    client.closed,
    new Promise<{ code: number; reason: string }>((resolve) => setTimeout(() => resolve({ code: -1, reason: 'still open' }), 3000)),
  ]);
  assert.deepEqual(closed, { code: 1011, reason: 'store unavailable' }, 'the socket was closed with 1011');
  assert.ok(acknowledged.size > 0 && acknowledged.size < sent.length, `${acknowledged.size} of ${sent.length} acknowledged`);
  const exit = await Promise.race([cli.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 5000))]);
  assert.deepEqual(exit, { code: 1, signal: null }, 'the process exits with code 1');
  assert.match(cli.stderr(), /change log cannot be written \(.*EFBIG/, 'stderr names the disk error');
  assert.match(cli.stderr(), /exiting with code 1 so that a supervisor restarts/, 'stderr says what happens next');

  const second = await assertKept(t, dataDir, acknowledged, operation);
  // An operation that was never acknowledged is applied when the client re-sends it.
  const again = await TestClient.open(`ws://127.0.0.1:${second.port}/api/sync`, t);
  await again.sync('0/0');
  const unacknowledged = sent.find((id) => !acknowledged.has(id))!;
  again.send(operation(unacknowledged));
  assert.equal((await again.until('operation_complete')).at(-1)!.type, 'operation_complete', 'the re-sent operation is acknowledged');
});

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
  const limited = parseCliOptions(['--max-depth', '4000', '--max-connections', '50', '--auth-timeout-ms', '500', '--recover-log'], {}, '/srv');
  assert.ok(!('error' in limited), 'no error');
  assert.deepEqual(
    [limited.server.limits, limited.server.maxConnections, limited.server.authTimeout, limited.server.recoverLog],
    [{ maxDepth: 4000 }, 50, 500, true],
  );
  assert.equal(defaults.server.recoverLog, false, 'a damaged log is not cut unless asked');
  assert.deepEqual([defaults.server.compactEvery, defaults.server.tombstoneRetentionMs], [0, 30 * 24 * 3_600_000], 'no automatic compaction; deletes kept 30 days');
  const compacting = parseCliOptions(['--compact-every', '100000', '--tombstone-retention-hours', '48'], {}, '/srv');
  assert.ok(!('error' in compacting), 'no error');
  assert.deepEqual([compacting.server.compactEvery, compacting.server.tombstoneRetentionMs], [100_000, 48 * 3_600_000]);
  const postgres = parseCliOptions(['--store', 'postgres://u@db/sync'], {}, '/srv');
  assert.ok(!('error' in postgres), 'no error');
  assert.equal(postgres.server.storeUrl, 'postgres://u@db/sync');
  const postgresFromEnv = parseCliOptions([], { SYNC_STORE: 'postgresql://db/x' }, '/srv');
  assert.ok(!('error' in postgresFromEnv), 'no error');
  assert.equal(postgresFromEnv.server.storeUrl, 'postgresql://db/x');
  assert.equal(defaults.server.storeUrl, undefined, 'the embedded log by default');
  for (const bad of [['--store', 'mysql://db'], ['--store', '/var/lib/db'], ['--port', '70000'], ['--batch-size', '0'], ['--max-depth', '0'], ['--compact-every', '-1'], ['--tombstone-retention-hours', '1.5'], ['--nope'], ['stray'], ['--port']]) {
    assert.ok('error' in parseCliOptions(bad, {}, '/srv'), `${bad.join(' ')} is refused`);
  }
});
