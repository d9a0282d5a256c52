/**
 * The server fuzzer: random and malformed input from raw sockets (bytes that are not HTTP, broken
 * upgrade requests, WebSocket frames that break RFC 6455, and protocol frames of every wrong
 * shape over proper WebSockets), while two well-behaved clients use the same server. The server
 * must not exit, and the two must not notice: their sockets stay open, every operation of one is
 * acknowledged and reaches the other.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { Prng } from '../test/helpers/prng.ts';
import { deepArray, junkText, mutate, randomValue } from './fuzz-values.ts';
import type { ServerProcess } from './server-process.ts';

const PARALLEL = 6;
const WITNESS_EVERY_MS = 25;
const SETTLE_TIMEOUT_MS = 30_000;
const SOCKET_TIMEOUT_MS = 2_000;

export interface ServerFuzzResult {
  frames: number;
  connections: Map<string, number>;
  witnessOperations: number;
  violations: string[];
}

/** A client that behaves: syncs, and writes or reads the `witness` entities. */
class Witness {
  readonly socket: WebSocket;
  readonly acknowledged = new Set<string>();
  readonly seen = new Set<string>();
  closed: string | undefined;

  constructor(url: string, clientId: string) {
    this.socket = new WebSocket(url);
    this.socket.on('open', () => this.socket.send(JSON.stringify({ type: 'sync', clientId, lastLSN: '0/0' })));
    this.socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; id?: string; changes?: { entityType: string; entityId: string }[] };
      if (frame.type === 'operation_complete' && frame.id) this.acknowledged.add(frame.id);
      if (frame.type === 'changes') for (const change of frame.changes ?? []) if (change.entityType === 'witness') this.seen.add(change.entityId);
    });
    this.socket.on('close', (code, reason) => { this.closed = `${code} ${reason.toString()}`; });
    this.socket.on('error', (error) => { this.closed ??= error.message; });
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve());
      this.socket.once('error', reject);
    });
  }
}

/** A protocol frame of any shape a client might send, right or wrong. */
function clientFrame(rng: Prng): string | Buffer {
  const roll = rng.next();
  if (roll < 0.05) return randomBytes(rng.int(1, 200));
  if (roll < 0.2) return junkText(rng);
  if (roll < 0.3) return JSON.stringify(mutate(rng, { type: 'sync', clientId: rng.pick(['c', '', 'x'.repeat(5000), rng.string(8)]), lastLSN: rng.pick(['0/0', 'FFFFFFFF/FFFFFFFF', '0/10', '1/0']), token: randomValue(rng, 1) }));
  if (roll < 0.35) return JSON.stringify({ type: 'ping' });
  if (roll < 0.4) return JSON.stringify({ type: `fz_${rng.string(4)}`, data: randomValue(rng, 2) });
  if (roll < 0.42) return `{"type":"operation","operation":{"id":"fz-${rng.string(8)}","type":"upsert","payload":{"entityType":"fz","entityId":"deep","data":${deepArray(rng.int(60, 5000))}}}}`;
  const data = rng.chance(0.01) ? 'x'.repeat(rng.int(100_000, 1_200_000)) : randomValue(rng, 3);
  const operation = {
    id: rng.chance(0.9) ? `fz-${rng.string(8)}` : randomValue(rng, 1),
    type: rng.pick(['upsert', 'patch', 'delete', 'upsert', 'nope', '']),
    payload: rng.chance(0.9) ? { entityType: rng.pick(['fz', 'fz', '', '__proto__']), entityId: rng.pick([rng.string(4), '', '__proto__']), data } : randomValue(rng, 2),
  };
  return JSON.stringify(rng.chance(0.3) ? mutate(rng, { type: 'operation', operation }) : { type: 'operation', operation });
}

/** One WebSocket frame from a client, as bytes, with any of its header fields chosen. */
function wsFrame(options: { fin?: boolean; rsv?: number; opcode: number; masked?: boolean; payload: Buffer; claimedLength?: bigint }): Buffer {
  const { fin = true, rsv = 0, opcode, masked = true, payload } = options;
  const length = options.claimedLength ?? BigInt(payload.length);
  const head = [(fin ? 0x80 : 0) | (rsv << 4) | opcode];
  const maskBit = masked ? 0x80 : 0;
  let extended = Buffer.alloc(0);
  if (length < 126n) head.push(maskBit | Number(length));
  else if (length < 65536n) {
    head.push(maskBit | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(Number(length));
  } else {
    head.push(maskBit | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(length);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), extended, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from(head), extended, mask, body]);
}

/** Frames that break RFC 6455 in one way each. */
function brokenFrame(rng: Prng): Buffer {
  const text = Buffer.from(junkText(rng));
  return rng.pick([
    () => wsFrame({ opcode: 1, masked: false, payload: text }),
    () => wsFrame({ opcode: rng.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), payload: text }),
    () => wsFrame({ opcode: 1, rsv: rng.int(1, 7), payload: text }),
    () => wsFrame({ opcode: 0, payload: text }),
    () => wsFrame({ opcode: 9, payload: Buffer.alloc(200, 1) }),
    () => wsFrame({ opcode: 9, fin: false, payload: Buffer.alloc(4) }),
    () => wsFrame({ opcode: 1, payload: Buffer.from([0xff, 0xfe, 0xc3, 0x28]) }),
    () => wsFrame({ opcode: 1, payload: Buffer.alloc(0), claimedLength: 2n ** 63n - 1n }),
    () => wsFrame({ opcode: 8, payload: Buffer.from([0x03, 0xe7]) }),
    () => wsFrame({ opcode: 8, payload: Buffer.from([0x03]) }),
    () => wsFrame({ opcode: 1, fin: false, payload: text }),
    () => wsFrame({ opcode: 1, payload: text }),
    () => randomBytes(rng.int(1, 64)),
  ])();
}

const BAD_UPGRADES = [
  (port: number) => `GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  (port: number) => `GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  (port: number) => `GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n`,
  (port: number) => `GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Long: ${'a'.repeat(70_000)}\r\n\r\n`,
  (port: number) => `GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  (port: number) => `POST /api/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 5\r\n\r\nhello`,
  () => 'GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n',
  () => 'GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n',
  () => 'BREW /pot HTCPCP/1.0\r\n\r\n',
];

const GOOD_UPGRADE = (port: number): string => `GET /api/sync HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

/** Writes `first`, then (once the server answered, if `then` is given) `then`; ends when the server closes or after a while. */
function rawConnection(port: number, first: string | Buffer, then?: readonly Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, SOCKET_TIMEOUT_MS); // a deadline for a server that keeps the socket open
    socket.on('error', done);
    socket.on('close', done);
    let answered = false;
    socket.on('data', () => {
      if (answered || !then) return;
      answered = true;
      for (const frame of then) socket.write(frame);
    });
    socket.write(first);
    if (!then) socket.end();
  });
}

function wsConnection(url: string, frames: readonly (string | Buffer)[]): Promise<void> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { maxPayload: 64 << 20 });
    const done = (): void => {
      clearTimeout(timer);
      socket.terminate();
      resolve();
    };
    const timer = setTimeout(done, SOCKET_TIMEOUT_MS); // a deadline for a connection the server keeps
    socket.on('error', done);
    socket.on('close', done);
    socket.on('open', () => {
      for (const frame of frames) socket.send(frame);
      socket.close(1000);
    });
  });
}

export async function serverFuzz(seed: number, frames: number, server: ServerProcess): Promise<ServerFuzzResult> {
  const rng = new Prng(seed);
  const violations: string[] = [];
  const connections = new Map<string, number>();
  const writer = new Witness(server.wsUrl, 'witness-writer');
  const reader = new Witness(server.wsUrl, 'witness-reader');
  await Promise.all([writer.opened(), reader.opened()]);
  let written = 0;
  const writing = setInterval(() => {
    written += 1;
    const id = `witness-${written}`;
    writer.socket.send(JSON.stringify({ type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'witness', entityId: id, data: { n: written } } } }));
  }, WITNESS_EVERY_MS);

  let sent = 0;
  const next = (): Promise<void> | undefined => {
    if (sent >= frames) return undefined;
    const kind = rng.weighted([[1, 'not http'], [1, 'bad upgrade'], [2, 'broken frames'], [6, 'protocol frames']] as const);
    connections.set(kind, (connections.get(kind) ?? 0) + 1);
    switch (kind) {
      case 'not http':
        sent += 1;
        return rawConnection(server.port, randomBytes(rng.int(1, 2000)));
      case 'bad upgrade':
        sent += 1;
        return rawConnection(server.port, rng.pick(BAD_UPGRADES)(server.port));
      case 'broken frames': {
        const count = Math.min(rng.int(1, 4), frames - sent);
        sent += count;
        return rawConnection(server.port, GOOD_UPGRADE(server.port), Array.from({ length: count }, () => brokenFrame(rng)));
      }
      case 'protocol frames': {
        const count = Math.min(rng.int(1, 40), frames - sent);
        sent += count;
        return wsConnection(server.wsUrl, Array.from({ length: count }, () => clientFrame(rng)));
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    for (let work = next(); work; work = next()) await work;
  }));
  clearInterval(writing);

  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  const ids = Array.from({ length: written }, (_, i) => `witness-${i + 1}`);
  while (Date.now() < deadline && !ids.every((id) => writer.acknowledged.has(id) && reader.seen.has(id))) {
    await new Promise((resolve) => setTimeout(resolve, 100)); // polls the condition
  }
  const unacknowledged = ids.filter((id) => !writer.acknowledged.has(id));
  const unseen = ids.filter((id) => !reader.seen.has(id));
  if (writer.closed) violations.push(`server fuzz: the writing client's socket closed (${writer.closed}) (seed ${seed})`);
  if (reader.closed) violations.push(`server fuzz: the reading client's socket closed (${reader.closed}) (seed ${seed})`);
  if (unacknowledged.length > 0) violations.push(`server fuzz: ${unacknowledged.length} of ${written} operations of a well-behaved client were not acknowledged (seed ${seed})`);
  if (unseen.length > 0) violations.push(`server fuzz: ${unseen.length} of ${written} operations did not reach the other client (seed ${seed})`);
  violations.push(...server.crashes.map((text) => `server fuzz: ${text} (seed ${seed})`));
  await server.lsn().catch((error: unknown) => violations.push(`server fuzz: the server does not answer /api/stats afterwards: ${String(error)} (seed ${seed})`));
  writer.socket.terminate();
  reader.socket.terminate();
  return { frames: sent, connections, witnessOperations: written, violations };
}
