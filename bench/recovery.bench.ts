/**
 * Recovery after an outage, in two parts.
 *
 * In Chromium: the reference server is stopped (SIGTERM) for 0.5 to 10 s, 20 times, short and long
 * outages mixed, and started again on the same port and data. Three clients live through the same
 * outages, each alone in its own browser context (so its own renderer process, whose WebSocket
 * throttling does not see the others' failed dials): <sync-connection> with its default schedule
 * in a visible page; the same element in a page that says it is hidden, which keeps the doubling
 * schedule every page had before (the baseline: today's schedule); and a plain WebSocket that
 * redials 50 ms after every failure (the floor for any client). Timed: from the new server
 * listening to each client's `connected`.
 *
 * Simulated: 2,000 clients that lost the server at the same instant draw their delays from the
 * client's own schedule (src/worker/retry-schedule.ts) until the server is back after 5 s and
 * after 10 s: the connections per 100 ms the server receives, their peak, the time until all are
 * back, visible pages against today's schedule. Nothing here asserts a time.
 */
import type { Page } from 'puppeteer-core';
import { launchBrowser, percentile, removeServer, startServer, type BenchServer, type Row } from './lib/harness.ts';
import { histogram, simulateReconnection, type SimulationResult } from './lib/reconnect-simulation.ts';

/** Seconds without a server, short and long mixed; `BENCH_RESTARTS` takes the first n. */
const OUTAGES_S = [0.5, 10, 2, 7, 1, 9, 4, 10, 3, 6, 0.5, 8, 5, 10, 1.5, 7, 2.5, 9, 4, 6];
const RESTARTS = Math.min(OUTAGES_S.length, Number(process.env.BENCH_RESTARTS ?? OUTAGES_S.length));
const RECONNECT_TIMEOUT_MS = 90_000;
/** Quiet time between a recovery and the next outage. */
const SETTLE_MS = 300;
const CLIENTS = 2_000;
const BUCKET_MS = 100;

type Variant = 'ours' | 'today' | 'raw';
type Visibility = 'visible' | 'hidden';
interface LogEntry { type: string; at: number; detail?: { delay?: number; code?: number } }
interface Recovery { outage: number; back: number; failedDials: number }

type PageBench = {
  benchRecovery: {
    now(): number;
    log: LogEntry[];
    startElement(name: string, hidden: boolean): Promise<Visibility>;
    startRaw(): Promise<Visibility>;
  };
};

const nodeNow = () => performance.timeOrigin + performance.now();

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Page clock minus Node clock, from the round trip with the smallest delay of a few. */
async function clockOffset(page: Page): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 10; i++) {
    const before = nodeNow();
    const pageTime = await page.evaluate(() => (globalThis as unknown as PageBench).benchRecovery.now());
    const after = nodeNow();
    if (after - before < best.rtt) best = { rtt: after - before, offset: pageTime - (before + after) / 2 };
  }
  return best.offset;
}

/** A client in its page, with the page's clock offset; fails when the page is not as the variant needs. */
async function startClient(server: BenchServer, page: Page, variant: Variant): Promise<number> {
  await page.goto(`${server.url}/bench/recovery.html`);
  await page.waitForFunction('typeof window.benchRecovery === "object"');
  const visibility = await page.evaluate((v: Variant) => {
    const bench = (globalThis as unknown as PageBench).benchRecovery;
    return v === 'raw' ? bench.startRaw() : bench.startElement(v, v === 'today');
  }, variant);
  const expected = variant === 'today' ? 'hidden' : 'visible';
  if (visibility !== expected) throw new Error(`the ${variant} client's page is ${visibility}, not ${expected}`);
  return clockOffset(page);
}

/** What one client's log says of the outage that began at `since` (its clock): connected when, after how many failed dials. */
async function recovered(page: Page, since: number): Promise<{ connected: number; failedDials: number }> {
  await page.waitForFunction(
    (t: number) => {
      const log = (globalThis as unknown as PageBench).benchRecovery.log;
      return log.some((e) => e.type === 'synced' && e.at > t) && log.some((e) => e.type === 'connected' && e.at > t);
    },
    { polling: 10, timeout: RECONNECT_TIMEOUT_MS },
    since,
  );
  const entries = await page.evaluate(
    (t: number) => (globalThis as unknown as PageBench).benchRecovery.log.filter((e) => e.at > t),
    since,
  );
  const connected = entries.find((e) => e.type === 'connected')!.at;
  // One retry is scheduled when the connection drops, one more after each dial that failed.
  const retries = entries.filter((e) => e.type === 'dial' && e.at < connected).length;
  return { connected, failedDials: Math.max(0, retries - 1) };
}

/** The 20 outages, all three clients living through each. */
async function measure(server: BenchServer, pages: Record<Variant, Page>): Promise<Record<Variant, Recovery[]>> {
  const variants = Object.keys(pages) as Variant[];
  const offsets = {} as Record<Variant, number>;
  for (const variant of variants) offsets[variant] = await startClient(server, pages[variant], variant);
  const results: Record<Variant, Recovery[]> = { ours: [], today: [], raw: [] };
  let startup = 0;
  for (const target of OUTAGES_S.slice(0, RESTARTS)) {
    await sleep(SETTLE_MS);
    const signalled = nodeNow();
    await server.stop();
    // The new server listens `startup` ms after it is launched (as long as last time).
    await sleep(Math.max(0, target * 1_000 - (nodeNow() - signalled) - startup));
    const launched = nodeNow();
    await server.startAgain();
    const listening = nodeNow();
    startup = listening - launched;
    for (const variant of variants) {
      const { connected, failedDials } = await recovered(pages[variant], signalled + offsets[variant]);
      results[variant].push({ outage: listening - signalled, back: connected - offsets[variant] - listening, failedDials });
    }
  }
  return results;
}

async function inChromium(): Promise<Record<Variant, Recovery[]>> {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const pages = {} as Record<Variant, Page>;
    for (const variant of ['ours', 'today', 'raw'] as const) {
      const context = await browser.createBrowserContext();
      pages[variant] = await context.newPage();
      pages[variant].on('pageerror', (error) => console.error(`page error (${variant}):`, error));
    }
    const results = await measure(server, pages);
    for (const [variant, list] of Object.entries(results)) {
      const fmt = (key: keyof Recovery) => list.map((x) => Math.round(x[key])).join(' ');
      process.stderr.write(`recovery (${variant}): outage ms [${fmt('outage')}], back to connected ms [${fmt('back')}], failed dials [${fmt('failedDials')}]\n`);
    }
    return results;
  } finally {
    await browser.close();
    await removeServer(server);
  }
}

/** Counts per 100 ms for the first second, then per second, as one line for the log. */
function describe(name: string, result: SimulationResult): string {
  const perBucket = histogram(result.connectedAfter, BUCKET_MS);
  const perSecond = histogram(result.connectedAfter, 1_000);
  return `${name}: per 100 ms [${perBucket.slice(0, 10).join(' ')}], per second [${perSecond.join(' ')}]`;
}

function simulated(outageS: number): Row[] {
  const outageMs = outageS * 1_000;
  const ours = simulateReconnection({ clients: CLIENTS, outageMs, visible: true });
  const today = simulateReconnection({ clients: CLIENTS, outageMs, visible: false });
  process.stderr.write(`simulated ${CLIENTS} clients, ${outageS} s outage, connections after the return\n  ${describe('ours ', ours)}\n  ${describe('today', today)}\n`);
  const throttledOurs = simulateReconnection({ clients: CLIENTS, outageMs, visible: true, browserThrottle: true });
  const throttledToday = simulateReconnection({ clients: CLIENTS, outageMs, visible: false, browserThrottle: true });
  const peak = (r: SimulationResult) => Math.max(...histogram(r.connectedAfter, BUCKET_MS));
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const baselineName = 'today\'s schedule (full jitter, 500 ms doubling to 30 s; a hidden page\'s now), same clients';
  const what = `${CLIENTS.toLocaleString('en-US')} simulated clients, server back after ${outageS} s`;
  return [
    { what: `${what}: peak connections per 100 ms`, ours: peak(ours), baseline: peak(today), unit: '', better: 'lower', baselineName },
    { what: `${what}: all reconnected after`, ours: ours.connectedAfter.at(-1)!, baseline: today.connectedAfter.at(-1)!, unit: 'ms', better: 'lower', baselineName },
    { what: `${what}: wait after the return, p90`, ours: percentile(ours.connectedAfter, 90), baseline: percentile(today.connectedAfter, 90), unit: 'ms', better: 'lower', baselineName },
    { what: `${what}: failed dials per client during the outage, mean`, ours: mean(ours.failedDials), baseline: mean(today.failedDials), unit: '', better: 'lower', baselineName },
    { what: `${what}, Chromium's WebSocket throttle added (model): wait after the return, p90`, ours: percentile(throttledOurs.connectedAfter, 90), baseline: percentile(throttledToday.connectedAfter, 90), unit: 'ms', better: 'lower', baselineName },
  ];
}

export async function run(): Promise<Row[]> {
  const results = await inChromium();
  const backs = (variant: Variant) => results[variant].map((x) => x.back);
  const failed = (variant: Variant) => results[variant].reduce((sum, x) => sum + x.failedDials, 0) / results[variant].length;
  const what = `server back after an outage of 0.5 to 10 s to \`connected\` (${RESTARTS} outages)`;
  const today = 'the same element on a hidden page: today\'s schedule, same outages';
  const raw = 'a page socket redialling 50 ms after each failure, same outages';
  return [
    { what: `${what}, p50`, ours: percentile(backs('ours'), 50), baseline: percentile(backs('today'), 50), unit: 'ms', better: 'lower', baselineName: today },
    { what: `${what}, p90`, ours: percentile(backs('ours'), 90), baseline: percentile(backs('today'), 90), unit: 'ms', better: 'lower', baselineName: today },
    { what: `${what}, p90 against the floor`, ours: percentile(backs('ours'), 90), baseline: percentile(backs('raw'), 90), unit: 'ms', better: 'lower', baselineName: raw },
    { what: `failed dials per outage, mean (${RESTARTS} outages)`, ours: failed('ours'), baseline: failed('today'), unit: '', better: 'lower', baselineName: today },
    ...simulated(5),
    ...simulated(10),
    ...simulated(60),
  ];
}
