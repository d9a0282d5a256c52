/**
 * Server-side faults: floods of garbage connections, secrets that must never be reflected, and
 * frames that are not the JSON text the protocol asks for. Every test is bounded in time and
 * count and talks to loopback only.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import { eventually, getJson, postChanges, startCli, startServer, tempDir, TestClient, update, wsUrl, type Cli } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 20_000 };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function only<T extends ServerMessage['type']>(frame: ServerMessage, type: T): Extract<ServerMessage, { type: T }> {
  assert.equal(frame.type, type, `expected ${type}, got ${JSON.stringify(frame)}`);
  return frame as Extract<ServerMessage, { type: T }>;
}

function upsert(id: string, entityId: string, data: unknown) {
  return { type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'task', entityId, data } } };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Open file descriptors of a process (sockets included), from /proc; undefined elsewhere. */
function openDescriptors(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

// ---- 1. a flood of garbage connections ---------------------------------------------------------

const HANDSHAKE =
  'GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** What one flood connection does. The `raw*` kinds are plain TCP, the others `ws` clients. */
const KINDS = [
  'binary', // a binary frame of random bytes, then terminate
  'badUtf8', // a text frame that is not UTF-8, then terminate
  'notJson', // a text frame that is not JSON, then terminate
  'silent', // opens, sends nothing, terminates
  'unborn', // terminated while the handshake is under way
  'syncAndDrop', // syncs (a replay starts), sends operations, terminates without reading
  'rawGarbage', // TCP: bytes that are not HTTP, then hangs: the server must close it
  'rawPartial', // TCP: half a request line and headers, then hangs (slowloris); dropped by us
  'rawBadFrames', // TCP: a real handshake, then unmasked garbage frames, then hangs: closed
  'rawBadUpgrade', // TCP: an upgrade without a key, then hangs: answered 400 and closed
  'rawReset', // TCP: connects and is destroyed at once
  'rawOddRequest', // TCP: a parseable request with an odd target or method, then hangs: answered, closed
] as const;
type Kind = (typeof KINDS)[number];
/** Kinds the server itself must close even though the peer hangs. */
const SERVER_CLOSES: readonly Kind[] = ['rawGarbage', 'rawBadFrames', 'rawBadUpgrade', 'rawOddRequest'];
const ODD_REQUESTS = [
  'GET http://[ HTTP/1.1',
  'GET /dist/%E0%A4%A HTTP/1.1',
  'GET /%00/index.html HTTP/1.1',
  'GET /dist/../../../../etc/passwd HTTP/1.1',
  'OPTIONS * HTTP/1.1',
  'GET /api/stats?%ff%fe HTTP/1.1',
  'PURGE /api/changes HTTP/1.1',
  'POST /api/changes HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n{"x":',
  'GET /api/sync?clientId=%ff HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 99',
];

interface Outcome {
  /** The peer hung and the server ended the connection. */
  byServer: boolean;
  /** The start of what the server sent on a raw connection. */
  answer?: string;
}

interface FloodSocket {
  kind: Kind;
  /** Resolves once the connection is gone. */
  done: Promise<Outcome>;
  destroy(): void;
}

function floodSocket(port: number, kind: Kind, index: number): FloodSocket {
  if (kind.startsWith('raw')) {
    const socket: Socket = connect(port, '127.0.0.1');
    let destroyedByUs = false;
    socket.on('error', () => {});
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      if (answer.length < 200) answer += chunk.toString('latin1');
    });
    const done = new Promise<Outcome>((resolve) =>
      socket.once('close', () => resolve({ byServer: !destroyedByUs, answer })),
    );
    socket.once('connect', () => {
      switch (kind) {
        case 'rawGarbage':
          socket.write(Buffer.concat([Buffer.from([0, 0xff, 0xfe, 0x80]), randomBytes(200), Buffer.from('\r\n\r\n')]));
          break;
        case 'rawPartial':
          socket.write('GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
          break;
        case 'rawBadFrames':
          socket.write(HANDSHAKE);
          // An unmasked text frame (a client's must be masked), then noise: a protocol error.
          // (Noise alone may read as the header of a long frame still to come, which is no error.)
          socket.write(Buffer.concat([Buffer.from([0x81, 0x05]), Buffer.from('hello'), randomBytes(64)]));
          break;
        case 'rawBadUpgrade':
          socket.write('GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
          break;
        case 'rawOddRequest': {
          const [head, rest = ''] = ODD_REQUESTS[Math.floor(index / KINDS.length) % ODD_REQUESTS.length]!.split('\r\n\r\n');
          socket.write(`${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n${rest}`);
          break;
        }
        case 'rawReset':
          destroyedByUs = true;
          socket.destroy();
          break;
        default:
          break;
      }
    });
    return {
      kind,
      done,
      destroy: () => {
        destroyedByUs = true;
        socket.destroy();
      },
    };
  }

  const socket = new WebSocket(`ws://127.0.0.1:${port}/api/sync`);
  socket.on('error', () => {});
  const done = new Promise<Outcome>((resolve) => socket.once('close', () => resolve({ byServer: false })));
  if (kind === 'unborn') {
    setImmediate(() => socket.terminate());
  } else {
    socket.once('open', () => {
      switch (kind) {
        case 'binary':
          socket.send(randomBytes(1 + (index % 512)), { binary: true });
          break;
        case 'badUtf8':
          socket.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc0, 0xaf, 0x22, 0x7d]), { binary: false });
          break;
        case 'notJson':
          socket.send(`garbage ${index} {{{`);
          break;
        case 'syncAndDrop':
          socket.send(JSON.stringify({ type: 'sync', clientId: `flood-${index}`, lastLSN: '0/0' }));
          socket.send(JSON.stringify({ type: 'operation', operation: { id: `flood-${index}`, type: 'nope', payload: 1 } }));
          break;
        default:
          break;
      }
      // Abruptly: no close handshake, often before the server has answered.
      setImmediate(() => socket.terminate());
    });
  }
  return { kind, done, destroy: () => socket.terminate() };
}

test('a flood of garbage connections leaves the server up, bounded and serving', BOUNDED, async (t) => {
  const cli = await startCli(t, ['--data-dir', await tempDir(t), '--static-dir', await tempDir(t)]);
  // Something to replay, so the connections that sync and drop leave a replay under way.
  for (let i = 0; i < 20; i += 1) {
    const posted = await postChanges(cli.url, Array.from({ length: 50 }, (_, j) => update('seed', `${i}-${j}`, { i, j })));
    assert.equal(posted.status, 200, 'seeding the log');
  }

  // The well-behaved client: synced before the flood and live throughout.
  const steady = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync`, t);
  await steady.sync('0/0');
  let operations = 0;
  const acknowledge = async (client: TestClient, what: string) => {
    const id = `${what}-${(operations += 1)}`;
    client.send(upsert(id, id, { what }));
    const frames = await client.until('operation_complete');
    assert.equal(only(frames.at(-1)!, 'operation_complete').id, id, `${what}: the operation is acknowledged`);
  };
  await acknowledge(steady, 'before');

  const liveClients = async () => Number((await getJson(`${cli.url}/api/stats`)).clients);
  const baselineDescriptors = openDescriptors(cli.pid);
  // Bounded means the server lets go of every garbage connection (clients and descriptors back to
  // where they were); how much memory that takes is for a benchmark, not a test.
  const ROUNDS = Math.max(2, Number(process.env.FAULTS_ROUNDS ?? 3));
  const PER_ROUND = 500;
  for (let round = 0; round < ROUNDS; round += 1) {
    const flood = Array.from({ length: PER_ROUND }, (_, i) => floodSocket(cli.port, KINDS[i % KINDS.length]!, i));
    // During the flood (the slowloris connections are all still held): the live client gets its
    // answers, and a new client can connect, replay and have an operation acknowledged.
    await acknowledge(steady, `during-${round}`);
    const newcomer = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync`, t);
    const replay = await newcomer.sync('0/0');
    assert.equal(replay[0]!.type, 'sync_start', 'a newcomer during the flood gets a replay');
    await acknowledge(newcomer, `newcomer-${round}`);
    newcomer.socket.close();

    // Everything that hung on a garbage request is closed by the server, not left to us.
    const ended = new Map<FloodSocket, Outcome>();
    for (const socket of flood) void socket.done.then((outcome) => ended.set(socket, outcome));
    const waited = flood.filter((socket) => socket.kind !== 'rawPartial');
    await eventually(() => waited.every((socket) => ended.has(socket)), 8000, `round ${round}: every garbage connection ended`).catch(() => {});
    const hanging = waited.filter((socket) => !ended.has(socket)).map((socket) => socket.kind);
    assert.deepEqual(hanging, [], `round ${round}: connections still open after 8 s`);
    for (const socket of waited) {
      if (SERVER_CLOSES.includes(socket.kind)) {
        assert.ok(ended.get(socket)!.byServer, `round ${round}: the server closed a ${socket.kind} connection that hung`);
      }
      if (socket.kind === 'rawOddRequest') {
        const { answer = '' } = ended.get(socket)!;
        // Answered as the client's fault (4xx) or served, never as the server's (5xx).
        assert.match(answer, /^HTTP\/1\.1 [1-4]\d\d /, `round ${round}: an odd request is answered (${JSON.stringify(answer.slice(0, 40))})`);
      }
    }
    for (const socket of flood) socket.destroy();
    await Promise.all(flood.map((socket) => socket.done));

    // The server forgets all of them: one live client left, its descriptors back to where they were.
    await eventually(async () => (await liveClients()) === 1, 5000, `round ${round}: stats.clients back to 1`);
    if (baselineDescriptors !== undefined) {
      await eventually(
        () => (openDescriptors(cli.pid) ?? 0) <= baselineDescriptors + 5,
        5000,
        `round ${round}: the server's descriptors back to ${baselineDescriptors} (now ${openDescriptors(cli.pid)})`,
      );
    }
  }

  assert.equal(cli.child.exitCode, null, 'the server is still running');
  assert.equal(cli.child.signalCode, null, 'the server was not killed');
  // After the flood: the live client is still served, a new one still syncs and writes.
  await acknowledge(steady, 'after');
  const late = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync`, t);
  await late.sync('0/0');
  await acknowledge(late, 'late');
  const stats = await getJson(`${cli.url}/api/stats`);
  assert.equal(stats.operationsApplied, operations, 'exactly the well-behaved operations were applied');
  assert.doesNotMatch(cli.output(), /uncaught|unhandled|TypeError|RangeError/i, 'nothing was thrown in the server');
});

// ---- 2. the token is never reflected -----------------------------------------------------------

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

// ---- 3. binary frames and invalid UTF-8 --------------------------------------------------------

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
