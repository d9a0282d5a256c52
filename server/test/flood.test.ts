/**
 * A flood of garbage connections against the server (plain TCP and WebSocket clients that send
 * garbage, hang or vanish): it stays up, lets go of every one of them and keeps serving. Bounded
 * in time and count, on loopback only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { eventually, getJson, only, postChanges, startCli, tempDir, TestClient, update, upsert } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 20_000 };

/** Open file descriptors of a process (sockets included), from /proc; undefined elsewhere. */
function openDescriptors(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

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
