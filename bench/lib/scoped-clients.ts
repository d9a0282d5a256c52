/**
 * A child process of the scopes benchmark: holds many clients, client i with the token `s<i mod
 * scopes>`, then posts changes one after another, change j to the scope `s<j mod scopes>`, and
 * measures how long each takes to reach the clients that should get it (those of its scope, or
 * every client with `everyone` = 1). Run as
 *
 *   node --import tsx bench/lib/scoped-clients.ts <ws url> <clients> <scopes> <everyone: 0|1>
 *        <POST url> <changes> <warm-up changes>
 *
 * Prints `{"event":"ready",...}` once the clients are live, waits for a line on stdin, posts, and
 * prints `{"event":"result",...}`. Exits when stdin ends. Only 127.0.0.1. Nothing here asserts a time.
 */
import { WebSocket } from 'ws';

const [wsUrl, countText, scopesText, everyoneText, postUrl, changesText, warmUpText] = process.argv.slice(2);
const COUNT = Number(countText);
const SCOPES = Number(scopesText);
const EVERYONE = everyoneText === '1';
const CHANGES = Number(changesText);
const WARM_UP = Number(warmUpText);
if (!wsUrl || !postUrl || !(COUNT > 0) || !(SCOPES > 0) || !(CHANGES > 0) || !(WARM_UP >= 0)) {
  process.stderr.write('usage: scoped-clients.ts <ws url> <clients> <scopes> <0|1> <POST url> <changes> <warm-up>\n');
  process.exit(2);
}
for (const url of [wsUrl, postUrl]) {
  if (new URL(url).hostname !== '127.0.0.1') {
    process.stderr.write(`scoped-clients: only 127.0.0.1 is allowed, not ${url}\n`);
    process.exit(2);
  }
}
const CONNECT_CONCURRENCY = 200;
const CONNECT_TIMEOUT_MS = 120_000;
const CHANGE_TIMEOUT_MS = 15_000;
setTimeout(() => {
  process.stderr.write('scoped-clients: lifetime exceeded, exiting\n');
  process.exit(1);
}, 300_000).unref();
process.stdin.on('end', () => process.exit(0));

const run = `run-${process.pid}-${Date.now()}`;
const now = () => performance.timeOrigin + performance.now();
const emit = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);

interface Client { scope: string; live: boolean; closed: boolean }
const clients: Client[] = [];
const pending = new Map<number, { latencies: number[]; expected: number; done: () => void }>();
let failed = 0;
let emptyBatches = 0;

function onFrame(client: Client, text: string, whenLive: () => void): void {
  const frame = JSON.parse(text) as { type?: string; changes?: { data?: { run?: string; seq?: number; sentAt?: number } }[] };
  if (frame.type === 'sync_complete' && !client.live) {
    client.live = true;
    whenLive();
    return;
  }
  if (frame.type !== 'changes' || !Array.isArray(frame.changes)) return;
  if (frame.changes.length === 0) emptyBatches += 1;
  const at = now();
  for (const change of frame.changes) {
    const data = change?.data;
    if (data?.run !== run || typeof data.seq !== 'number' || typeof data.sentAt !== 'number') continue;
    const waiting = pending.get(data.seq);
    if (!waiting) continue;
    waiting.latencies.push(at - data.sentAt);
    if (waiting.latencies.length >= waiting.expected) waiting.done();
  }
}

function connectOne(index: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = new WebSocket(wsUrl!, { perMessageDeflate: false });
    const client: Client = { scope: `s${index % SCOPES}`, live: false, closed: false };
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    socket.on('open', () => {
      clients.push(client);
      socket.send(JSON.stringify({ type: 'sync', clientId: `bench-${index}`, lastLSN: '0/0', token: client.scope }));
    });
    socket.on('message', (data) => onFrame(client, data.toString(), settle));
    socket.on('error', () => {});
    socket.on('close', () => {
      client.closed = true;
      if (!settled) failed += 1;
      settle();
    });
  });
}

const started = now();
let next = 0;
const lane = async () => {
  while (next < COUNT && now() - started < CONNECT_TIMEOUT_MS) await connectOne(next++);
};
await Promise.race([Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, lane)), new Promise((resolve) => setTimeout(resolve, CONNECT_TIMEOUT_MS))]);
const live = (scope?: string) => clients.filter((c) => c.live && !c.closed && (scope === undefined || c.scope === scope)).length;
emit({ event: 'ready', live: live(), failed, connectMs: now() - started });
await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const deliveries: number[] = [];
let missed = 0;
emptyBatches = 0;
for (let seq = -WARM_UP; seq < CHANGES; seq += 1) {
  const scope = `s${((seq % SCOPES) + SCOPES) % SCOPES}`;
  const expected = EVERYONE ? live() : live(scope);
  let done = () => {};
  const all = new Promise<void>((resolve) => { done = resolve; });
  const entry = { latencies: [] as number[], expected, done };
  pending.set(seq, entry);
  const sentAt = now();
  const body = JSON.stringify({ changes: [{ type: 'update', entityType: 'bench', entityId: `e${seq}`, data: { run, seq, sentAt, scope } }] });
  const response = await fetch(postUrl!, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer admin' }, body });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`POST answered ${response.status}`);
  const timer = setTimeout(done, CHANGE_TIMEOUT_MS);
  await all;
  clearTimeout(timer);
  pending.delete(seq);
  if (seq >= 0) {
    deliveries.push(...entry.latencies);
    missed += expected - entry.latencies.length;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
deliveries.sort((a, b) => a - b);
emit({ event: 'result', live: live(), deliveries: deliveries.length, missed, p50: percentile(deliveries, 50), p99: percentile(deliveries, 99), emptyBatches });
