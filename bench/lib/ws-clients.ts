/**
 * A child process of the server benchmark: holds many WebSocket clients on loopback (the least a
 * client can be: raw-websocket.ts), then measures how long changes posted to the server take to
 * reach every one of them, each taken when its bytes reached this process. Run as
 *
 *   node --import tsx bench/lib/ws-clients.ts <ws url> <clients> <wait-for-sync_complete: 0|1>
 *        <POST url> <changes> <warm-up changes>
 *
 * Every client sends `sync` (lastLSN 0/0) as soon as it opens. It prints JSON lines on stdout:
 * `{"event":"ready",...}` once every client is live (or the connect phase timed out), then waits
 * for a line on stdin before posting the changes one after another, and prints
 * `{"event":"result",...}`. It exits when stdin ends, so it never outlives the benchmark.
 * Nothing here asserts a time.
 */
import { openRaw, type RawClient } from './raw-websocket.ts';

const [wsUrl, countText, awaitSyncText, postUrl, changesText, warmUpText] = process.argv.slice(2);
const COUNT = Number(countText);
const AWAIT_SYNC = awaitSyncText === '1';
const CHANGES = Number(changesText);
const WARM_UP = Number(warmUpText);
if (!wsUrl || !postUrl || !(COUNT > 0) || !(CHANGES > 0) || !(WARM_UP >= 0)) {
  process.stderr.write('usage: ws-clients.ts <ws url> <clients> <0|1> <POST url> <changes> <warm-up>\n');
  process.exit(2);
}
for (const url of [wsUrl, postUrl]) {
  if (new URL(url).hostname !== '127.0.0.1') {
    process.stderr.write(`ws-clients: only 127.0.0.1 is allowed, not ${url}\n`);
    process.exit(2);
  }
}

/** In flight at once while connecting: keeps the server's accept backlog from overflowing. */
const CONNECT_CONCURRENCY = 200;
const CONNECT_TIMEOUT_MS = 90_000;
const CHANGE_TIMEOUT_MS = 15_000;
/** A hard cap on this process's life, whatever the parent does. */
const LIFETIME_MS = 240_000;
setTimeout(() => {
  process.stderr.write('ws-clients: lifetime exceeded, exiting\n');
  process.exit(1);
}, LIFETIME_MS).unref();
process.stdin.on('end', () => process.exit(0));

const run = `run-${process.pid}-${Date.now()}`;
/** Wall clock with sub-millisecond resolution; the posting and the receiving are this process. */
const now = () => performance.timeOrigin + performance.now();

const emit = (value: object) => process.stdout.write(`${JSON.stringify(value)}\n`);

interface Client { socket: RawClient; live: boolean; closed: boolean }
const clients: Client[] = [];

/**
 * The change being waited for: the frames live clients received since it was posted, kept as
 * bytes with their arrival time and parsed only once all have come, so that parsing one client's
 * frame does not delay the next client's arrival time.
 */
let waiting: { frames: { data: Buffer; at: number }[]; expected: number; done: () => void } | undefined;
let failed = 0;

function onFrame(client: Client, data: Buffer, at: number, whenLive: () => void): void {
  if (client.live) {
    if (!waiting) return;
    waiting.frames.push({ data, at });
    if (waiting.frames.length >= waiting.expected) waiting.done();
    return;
  }
  let frame: { type?: unknown };
  try {
    frame = JSON.parse(data.toString('utf8')) as typeof frame;
  } catch {
    return;
  }
  if (frame.type === 'sync_complete') {
    client.live = true;
    whenLive();
  }
}

/** How long after `sentAt` each frame carrying change `seq` of this run arrived. */
function latencies(frames: readonly { data: Buffer; at: number }[], seq: number): number[] {
  const found: number[] = [];
  for (const { data, at } of frames) {
    let frame: { type?: unknown; changes?: unknown };
    try {
      frame = JSON.parse(data.toString('utf8')) as typeof frame;
    } catch {
      continue;
    }
    if (frame.type !== 'changes' || !Array.isArray(frame.changes)) continue;
    for (const change of frame.changes as { data?: { run?: string; seq?: number; sentAt?: number } }[]) {
      const value = change?.data;
      if (value?.run === run && value.seq === seq && typeof value.sentAt === 'number') found.push(at - value.sentAt);
    }
  }
  return found;
}

function connectOne(index: number): Promise<void> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        resolve();
      }
    };
    const client: Client = {
      live: false,
      closed: false,
      socket: openRaw(new URL(wsUrl!), {
        open: () => {
          clients.push(client);
          client.socket.sendText(JSON.stringify({ type: 'sync', clientId: `bench-${index}`, lastLSN: '0/0' }));
          if (!AWAIT_SYNC) {
            client.live = true;
            settle();
          }
        },
        message: (data, at) => onFrame(client, data, at, settle),
        close: () => {
          client.closed = true;
          if (!settled) failed += 1;
          settle();
        },
      }),
    };
  });
}

async function connectAll(): Promise<number> {
  const started = now();
  let next = 0;
  const lane = async () => {
    while (next < COUNT && now() - started < CONNECT_TIMEOUT_MS) await connectOne(next++);
  };
  await Promise.race([
    Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, lane)),
    new Promise((resolve) => setTimeout(resolve, CONNECT_TIMEOUT_MS)),
  ]);
  return now() - started;
}

const liveClients = () => clients.filter((c) => c.live && !c.closed).length;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function postChange(seq: number): Promise<{ latencies: number[]; expected: number; postMs: number }> {
  const expected = liveClients();
  let done = () => {};
  const all = new Promise<void>((resolve) => { done = resolve; });
  const entry = { frames: [] as { data: Buffer; at: number }[], expected, done };
  waiting = entry;
  const sentAt = now();
  const body = JSON.stringify({
    changes: [{ type: 'update', entityType: 'bench', entityId: `e${seq}`, data: { run, seq, sentAt } }],
  });
  const response = await fetch(postUrl!, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  await response.arrayBuffer();
  const postMs = now() - sentAt;
  if (!response.ok) throw new Error(`POST answered ${response.status}`);
  const timer = setTimeout(done, CHANGE_TIMEOUT_MS);
  await all;
  clearTimeout(timer);
  waiting = undefined;
  return { latencies: latencies(entry.frames, seq), expected, postMs };
}

const connectMs = await connectAll();
emit({ event: 'ready', live: liveClients(), opened: clients.length, failed, connectMs });

await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));

const deliveries: number[] = [];
const lastArrivals: number[] = [];
const postTimes: number[] = [];
let missed = 0;
for (let seq = -WARM_UP; seq < CHANGES; seq++) {
  const { latencies, expected, postMs } = await postChange(seq);
  if (seq >= 0) {
    deliveries.push(...latencies);
    lastArrivals.push(latencies.length === 0 ? NaN : Math.max(...latencies));
    postTimes.push(postMs);
    missed += expected - latencies.length;
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
}
deliveries.sort((a, b) => a - b);
const sortedLast = [...lastArrivals].sort((a, b) => a - b);
const sortedPost = [...postTimes].sort((a, b) => a - b);
emit({
  event: 'result',
  live: liveClients(),
  deliveries: deliveries.length,
  missed,
  p50: percentile(deliveries, 50),
  p99: percentile(deliveries, 99),
  max: deliveries.at(-1) ?? NaN,
  lastArrivalP50: percentile(sortedLast, 50),
  lastArrivalMax: sortedLast.at(-1) ?? NaN,
  postAnsweredP50: percentile(sortedPost, 50),
});
