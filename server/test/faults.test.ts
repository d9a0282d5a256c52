/**
 * Server-side faults: secrets that must never be reflected, and frames that are not the JSON text
 * the protocol asks for (floods of garbage connections are in flood.test.ts). Every test is
 * bounded in time and count and talks to loopback only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { eventually, only, startCli, startServer, tempDir, TestClient, upsert, wsUrl } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 20_000 };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- 1. the token is never reflected -----------------------------------------------------------

test('the sync token is reflected in no frame, no HTTP answer and no CLI output', BOUNDED, async (t) => {
  const token = `tok-${randomUUID()}`;
  const wrong = `wrong-${randomUUID()}`;
  const secrets = [token, wrong, token.slice(4), wrong.slice(6)];
  const cli = await startCli(t, ['--data-dir', await tempDir(t), '--static-dir', await tempDir(t)], { env: { SYNC_TOKEN: token } });
  const seen: string[] = [];
  const record = (where: string, text: string) => seen.push(`${where}: ${text}`);
  const open = async (query = '') => {
    const client = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync${query}`, t);
    client.socket.on('message', (data) => record('frame', data.toString()));
    void client.closed.then(({ code, reason }) => record('close', `${code} ${reason}`));
    return client;
  };

  // Refused with 4001: a wrong token, a token of the wrong type, no token, an operation before
  // any sync, and malformed syncs that carry the right token.
  for (const first of [
    { type: 'sync', clientId: 'mallory', lastLSN: '0/0', token: wrong },
    { type: 'sync', clientId: 'mallory', lastLSN: '0/0', token: { value: token } },
    { type: 'sync', clientId: 'mallory', lastLSN: '0/0' },
    upsert(`early-${randomUUID()}`, 'x', 1),
    { type: 'sync', clientId: 'c', lastLSN: `${token}/1`, token },
    { type: 'sync', clientId: '', lastLSN: '0/0', token },
    `{"type":"sync","clientId":"c","token":"${token}"`,
  ]) {
    const client = await open();
    client.send(first);
    const reply = await Promise.race([client.closed, delay(3000).then(() => undefined)]);
    assert.equal(reply?.code, 4001, `${JSON.stringify(first).replaceAll(token, '<token>').slice(0, 80)} is closed with 4001`);
  }

  // Accepted (the token also in the query string, which the server ignores).
  const accepted = await open(`?token=${token}`);
  await accepted.sync('0/0', { token });
  accepted.send(upsert('op-1', 'e1', { ok: true }));
  await accepted.until('operation_complete');
  accepted.send({ type: 'ping' });
  only(await accepted.next(), 'pong');
  await accepted.sync('0/0', { token }); // a second sync replays the operation's change
  accepted.socket.close();
  await accepted.closed;

  // Every HTTP answer, headers included.
  for (const [method, path] of [
    ['GET', '/api/stats'],
    ['GET', `/api/stats?token=${token}`],
    ['GET', '/api/entities'],
    ['POST', '/api/stats'],
    ['OPTIONS', '/api/changes'],
    ['GET', '/api/sync'],
    ['GET', `/${token}`],
    ['GET', `/?token=${token}`],
  ] as const) {
    const where = `${method} ${path.replaceAll(token, '<token>')}`;
    const response = await fetch(`${cli.url}${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
    record(`${where} headers`, JSON.stringify([...response.headers]));
    record(`${where} body`, await response.text());
  }
  const posted = await fetch(`${cli.url}/api/changes`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: `{"token":"${token}","changes":`,
  });
  assert.equal(posted.status, 400, 'a broken body is refused');
  record('POST /api/changes', `${JSON.stringify([...posted.headers])} ${await posted.text()}`);

  // The CLI's own output, through a clean shutdown.
  cli.child.kill('SIGTERM');
  assert.deepEqual(await cli.exited, { code: 0, signal: null }, 'the server exits cleanly');
  record('cli output', cli.output());
  // And when it refuses its options, with the token in the environment.
  const refused = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', 'nope'], {
    cwd: ROOT,
    env: { ...process.env, SYNC_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => refused.kill('SIGKILL'));
  let refusedOutput = '';
  refused.stdout.on('data', (chunk: Buffer) => (refusedOutput += chunk.toString()));
  refused.stderr.on('data', (chunk: Buffer) => (refusedOutput += chunk.toString()));
  const [code] = await once(refused, 'exit');
  assert.equal(code, 2, 'bad options exit with 2');
  record('cli refusal', refusedOutput);

  assert.ok(seen.some((line) => line.startsWith('close: 4001')), 'the refusals were seen');
  assert.ok(seen.some((line) => line.includes('operation_complete')), 'the accepted client was served');
  assert.ok(seen.some((line) => line.startsWith('cli output') && line.includes('listening')), 'the CLI output was captured');
  for (const line of seen) {
    for (const secret of secrets) {
      assert.ok(!line.includes(secret), `a token was reflected in ${line.slice(0, 300)}`);
    }
  }
});

// ---- 2. binary frames and invalid UTF-8 --------------------------------------------------------

test('after a sync, binary frames of every shape get an error frame and the connection stays open', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  const binary: { what: string; send(): void }[] = [
    { what: 'empty', send: () => client.socket.send(Buffer.alloc(0), { binary: true }) },
    { what: 'random', send: () => client.socket.send(randomBytes(300), { binary: true }) },
    { what: 'a JSON ping', send: () => client.socket.send(Buffer.from('{"type":"ping"}'), { binary: true }) },
    {
      what: 'a JSON sync',
      send: () => client.socket.send(Buffer.from('{"type":"sync","clientId":"c","lastLSN":"0/0"}'), { binary: true }),
    },
    {
      what: 'fragmented',
      send: () => {
        client.socket.send(randomBytes(10), { binary: true, fin: false });
        client.socket.send(randomBytes(10), { binary: true, fin: true });
      },
    },
    { what: 'not UTF-8', send: () => client.socket.send(Buffer.from([0xff, 0xfe, 0xc0, 0xaf]), { binary: true }) },
  ];
  for (const { what, send } of binary) {
    send();
    const reply = only(await client.next(), 'error');
    assert.ok(reply.message.length > 0, `the error for a binary frame (${what}) says something`);
  }
  client.socket.send('', { binary: false });
  only(await client.next(), 'error');
  client.send({ type: 'ping' });
  only(await client.next(), 'pong');
  assert.equal(client.socket.readyState, client.socket.OPEN, 'the connection is still open');
  assert.equal((await server.stats()).records, 0, 'nothing was written');
});

test('text frames that are not UTF-8 are closed with 1007 and nothing else is disturbed', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const bystander = await TestClient.open(wsUrl(server), t);
  await bystander.sync('0/0');
  const invalid: { what: string; bytes: number[][] }[] = [
    { what: 'a stray 0xff', bytes: [[0xff]] },
    { what: 'an overlong "/"', bytes: [[0xc0, 0xaf]] },
    { what: 'an encoded surrogate', bytes: [[0xed, 0xa0, 0x80]] },
    { what: 'a truncated sequence', bytes: [[0xe2, 0x82]] },
    { what: 'a code point above U+10FFFF', bytes: [[0xf4, 0x90, 0x80, 0x80]] },
    { what: 'a valid sync with a bad byte inside', bytes: [[...Buffer.from('{"type":"sync","clientId":"c'), 0xff, ...Buffer.from('","lastLSN":"0/0"}')]] },
    { what: 'a bad byte in a later fragment', bytes: [[...Buffer.from('{"type":"ping"')], [0x20, 0xfe, 0x7d]] },
    { what: 'a sequence split across fragments and cut short', bytes: [[...Buffer.from('{"type":"ping","x":"'), 0xe2], [0x82, 0x22, 0x7d]] },
  ];
  for (const [index, { what, bytes }] of invalid.entries()) {
    const client = await TestClient.open(wsUrl(server), t);
    if (index % 2 === 1) await client.sync('0/0'); // live ones too
    bytes.forEach((fragment, i) =>
      client.socket.send(Buffer.from(fragment), { binary: false, fin: i === bytes.length - 1 }),
    );
    const closed = await Promise.race([client.closed, delay(3000).then(() => undefined)]);
    assert.equal(closed?.code, 1007, `${what}: closed with 1007`);
  }
  await eventually(async () => (await server.stats()).clients === 1, 3000, 'only the bystander left');
  // The bystander is untouched and the server still writes.
  bystander.send(upsert('after', 'a', { ok: true }));
  const frames = await bystander.until('operation_complete');
  assert.equal(only(frames.at(-1)!, 'operation_complete').id, 'after', 'the bystander is acknowledged');
  assert.equal((await server.stats()).records, 1, 'nothing but the bystander was written');
});

test('lone surrogates inside valid JSON are stored and replayed unchanged', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  const data = { text: 'a\ud800b\udfffc', emoji: '\ud83d\ude00', separators: '\u2028\u2029\n\u0000' };
  // Written with JSON escapes so the frame itself is valid UTF-8.
  client.send(JSON.stringify(upsert('surrogates', 'lone\udc00', data)));
  await client.until('operation_complete');
  const reader = await TestClient.open(wsUrl(server), t);
  const frames = await reader.sync('0/0');
  const changes = frames.flatMap((frame) => (frame.type === 'changes' ? frame.changes : []));
  assert.equal(changes.length, 1, 'one change replayed');
  const change = changes[0]!;
  assert.equal(change.entityId, 'lone\udc00', 'the entity id is unchanged');
  assert.ok(change.type === 'update', 'an update');
  assert.deepEqual(change.data, data, 'the data is unchanged');
});
