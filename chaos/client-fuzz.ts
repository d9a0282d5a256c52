/**
 * The client fuzzer: a fake server sends random and malformed frames over a real WebSocket into
 * the real worker of a browser tab that has operations queued. The tab must not crash, its worker
 * must not die, every frame it could not use must come back as an `error` event with a documented
 * code and a message, and the outbox must still hold every operation: pointed at a real server
 * afterwards, the tab delivers each of them, once.
 */
import type { AddressInfo } from 'node:net';
import type { Browser } from 'puppeteer-core';
import { WebSocketServer, type WebSocket } from 'ws';
import { Prng } from '../test/helpers/prng.ts';
import { ChaosClient, Ledger } from './clients.ts';
import { deepArray, junkText, mutate, randomValue } from './fuzz-values.ts';
import { readLog } from './log-reader.ts';
import type { PageServer } from './page-server.ts';
import type { ServerProcess } from './server-process.ts';
import { checkApplications } from './verify.ts';

const QUEUED = 25;
/** Codes the fuzzed frames may draw (docs/failure-modes.md): a bad frame, bad items, a server's report, a store refusing. */
const EXPECTED_CODES = new Set(['protocol', 'invalid_change', 'server', 'storage']);
const SETTLE_TIMEOUT_MS = 60_000;
/** A deadline for the whole fuzz: a tab that stops dialling never asks for the rest. */
const FUZZ_TIMEOUT_MS = 600_000;

export interface ClientFuzzResult {
  frames: number;
  connections: number;
  errors: Map<string, number>;
  violations: string[];
}

const SERVER_TYPES = ['sync_request', 'sync_start', 'changes', 'batch_update', 'sync_data', 'entity_update', 'entity_delete',
  'sync_complete', 'sync_error', 'operation_complete', 'operation_error', 'pong', 'error', 'reset'] as const;

/** One frame a server might send, right or wrong; `close` ends the connection instead. */
export function serverFrame(rng: Prng, lsn: { value: bigint }): string | Buffer | { close: number } {
  const nextLsn = (): string => {
    lsn.value += BigInt(rng.int(1, 1000));
    return `${(lsn.value >> 32n).toString(16)}/${(lsn.value & 0xffff_ffffn).toString(16)}`;
  };
  const item = (): unknown => rng.chance(0.85)
    ? (rng.chance(0.8)
      ? { type: 'update', entityType: 'fz', entityId: `e${rng.int(0, 50)}`, data: randomValue(rng, 3), timestamp: Date.now() }
      : { type: 'delete', entityType: 'fz', entityId: `e${rng.int(0, 50)}` })
    : randomValue(rng, 2);
  const roll = rng.next();
  if (roll < 0.003) return { close: rng.pick([1000, 1001, 1011, 1006]) };
  if (roll < 0.03) return Buffer.from(rng.string(rng.int(0, 64)));
  if (roll < 0.15) return junkText(rng);
  if (roll < 0.16) return `{"type":"changes","lsn":"${nextLsn()}","changes":[{"type":"update","entityType":"fz","entityId":"deep","data":${deepArray(rng.int(100, 5000))}}]}`;
  if (roll < 0.45) return JSON.stringify({ type: 'changes', lsn: nextLsn(), changes: Array.from({ length: rng.int(0, 8) }, item) });
  const type = rng.chance(0.9) ? rng.pick(SERVER_TYPES.filter((t) => t !== 'reset' || rng.chance(0.05))) : `fz_${rng.string(5)}`;
  const frame: Record<string, unknown> = { type };
  switch (type) {
    case 'changes': Object.assign(frame, { lsn: nextLsn(), changes: [item(), item()] }); break;
    case 'batch_update':
    case 'sync_data': Object.assign(frame, { data: [item()], lsn: nextLsn() }); break;
    case 'entity_update': Object.assign(frame, { entityType: 'fz', entityId: `e${rng.int(0, 50)}`, data: randomValue(rng, 2), lsn: nextLsn() }); break;
    case 'entity_delete': Object.assign(frame, { entityType: 'fz', entityId: `e${rng.int(0, 50)}`, lsn: nextLsn() }); break;
    case 'sync_start': Object.assign(frame, { lsn: nextLsn(), total: rng.int(0, 100) }); break;
    case 'sync_complete': Object.assign(frame, { lsn: `${(lsn.value >> 32n).toString(16)}/${(lsn.value & 0xffff_ffffn).toString(16)}` }); break;
    // Never the id of an operation the tab queued: a server may answer those, a fuzzer must not.
    case 'operation_complete': Object.assign(frame, { id: `fz-${rng.string(6)}`, lsn: nextLsn() }); break;
    case 'operation_error': Object.assign(frame, { id: `fz-${rng.string(6)}`, message: rng.string(20), ...(rng.chance(0.5) ? { retryable: true } : {}) }); break;
    case 'sync_error':
    case 'error': Object.assign(frame, { message: rng.chance(0.05) ? 'm'.repeat(rng.int(10_000, 300_000)) : rng.string(30) }); break;
    default: break;
  }
  return JSON.stringify(rng.chance(0.4) ? mutate(rng, frame) : frame);
}

export async function clientFuzz(seed: number, frames: number, browser: Browser, pages: PageServer, server: ServerProcess): Promise<ClientFuzzResult> {
  const rng = new Prng(seed);
  const violations: string[] = [];
  const lsn = { value: 0n };
  let sent = 0;
  let connections = 0;
  const received = new Set<string>();
  const fake = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => fake.once('listening', () => resolve()));
  const fakeUrl = `ws://127.0.0.1:${(fake.address() as AddressInfo).port}/api/sync`;
  let finished!: () => void;
  const allSent = new Promise<void>((resolve) => { finished = resolve; });

  const pump = async (socket: WebSocket): Promise<void> => {
    while (sent < frames && socket.readyState === socket.OPEN) {
      const frame = serverFrame(rng, lsn);
      sent += 1;
      if (typeof frame === 'object' && !Buffer.isBuffer(frame)) {
        if (frame.close === 1006) socket.terminate();
        else socket.close(frame.close);
        return;
      }
      socket.send(frame);
      // Lets the socket drain (and the client's answers in) before the next frame.
      if (socket.bufferedAmount > 1 << 20 || sent % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (sent >= frames) finished();
  };

  const pumping = new WeakSet<WebSocket>();
  fake.on('connection', (socket) => {
    connections += 1;
    socket.on('error', () => undefined);
    socket.on('message', (data) => {
      let frame: { type?: unknown; operation?: { id?: unknown } };
      try {
        frame = JSON.parse(data.toString()) as typeof frame;
      } catch {
        return;
      }
      if (frame.type === 'ping') socket.send('{"type":"pong"}');
      if (frame.type === 'operation' && typeof frame.operation?.id === 'string') received.add(frame.operation.id);
      if (frame.type === 'sync' && !pumping.has(socket)) {
        pumping.add(socket);
        void pump(socket);
      }
    });
  });

  const ledger = new Ledger();
  const client = new ChaosClient({ name: 'fuzzed', store: 'fuzz', tabs: 1, wsUrl: fakeUrl }, seed, browser, pages, ledger, { intervalMs: 1_000_000, maxInFlight: 0 });
  try {
    const tab = await client.openTab();
    await tab.page.evaluate(`globalThis.chaos.queue(${QUEUED})`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), FUZZ_TIMEOUT_MS); });
    const completed = await Promise.race([allSent.then(() => true), stalled]);
    clearTimeout(timer);
    if (!completed) violations.push(`client fuzz: the tab stopped taking frames after ${sent} of ${frames} (seed ${seed})`);
    await client.harvest(tab);
    const status = await tab.status();
    const queued = [...ledger.entries.keys()];
    const held = await tab.page.evaluate((ids: string[]) => (globalThis as unknown as { chaos: { outboxHolds(ids: string[]): Promise<string[]> } }).chaos.outboxHolds(ids), queued);
    if (held.length !== QUEUED) violations.push(`client fuzz: the outbox holds ${held.length} of the ${QUEUED} operations queued (seed ${seed})`);
    if (status.inFlight !== QUEUED) violations.push(`client fuzz: ${QUEUED - status.inFlight} operations were settled by a server that answered none (seed ${seed})`);
    if (received.size === 0) violations.push(`client fuzz: the tab sent none of its operations to the fake server (seed ${seed})`);
    for (const [code, count] of client.errors) {
      if (!EXPECTED_CODES.has(code)) violations.push(`client fuzz: ${count} error events with code ${code} (seed ${seed})`);
    }
    if (client.unexplained > 0) violations.push(`client fuzz: ${client.unexplained} error events without a message (seed ${seed})`);
    if ((client.errors.get('protocol') ?? 0) === 0) violations.push(`client fuzz: no frame was reported as a protocol error (seed ${seed})`);
    violations.push(...client.pageErrors.map((text) => `client fuzz: an error in the page: ${text} (seed ${seed})`));

    // Then a real server: every queued operation arrives there, once.
    await tab.page.evaluate(`globalThis.chaos.setUrl(${JSON.stringify(server.wsUrl)})`);
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    while ((await tab.status()).inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 250)); // polls the condition
    await client.harvest(tab);
    const check = checkApplications(ledger, new Set(['fuzzed']), await readLog(server.wsUrl, 'chaos-fuzz-reader'), seed, () => 'after the client fuzz');
    violations.push(...check.violations.map((text) => `client fuzz: ${text}`));
    return { frames: sent, connections, errors: client.errors, violations };
  } finally {
    for (const tab of client.live) await tab.page.close().catch(() => undefined);
    for (const socket of fake.clients) socket.terminate();
    await new Promise<void>((resolve) => fake.close(() => resolve()));
  }
}
