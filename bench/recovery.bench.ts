/**
 * Recovery after a server restart: SIGTERM to the reference server, start it again on the same
 * port and data directory, and time from the signal to the client's `connected` and to its
 * `sync_completed`. Three clients, one after another, each alone in its own browser context (so
 * its own renderer process, whose WebSocket throttling does not see the others' failed dials):
 * <sync-connection> with the default backoff, the same with `backoff-initial="50"`, and the
 * baseline, a plain WebSocket that redials 50 ms after every failure. Nothing here asserts a time.
 */
import type { Page } from 'puppeteer-core';
import { launchBrowser, percentile, removeServer, startServer, type BenchServer, type Row } from './lib/harness.ts';

const RESTARTS = Number(process.env.BENCH_RESTARTS ?? 9);
const RECONNECT_TIMEOUT_MS = 60_000;
/** Quiet time between a recovery and the next restart. */
const SETTLE_MS = 300;

/** What to start in the page: the element (with `backoff-initial` when given) or the raw socket. */
interface Client { name: string; raw: boolean; backoffInitial?: number }
interface LogEntry { type: string; at: number; detail?: { delay?: number; code?: number } }
interface Recovery { connected: number; synced: number; listening: number; dials: number }

type PageBench = {
  benchRecovery: {
    now(): number;
    log: LogEntry[];
    startElement(name: string, backoffInitial?: number): Promise<void>;
    startRaw(): Promise<void>;
  };
};

const nodeNow = () => performance.timeOrigin + performance.now();

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

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Restarts the server `RESTARTS` times under one client; each recovery timed from the SIGTERM. */
async function measure(
  server: BenchServer,
  page: Page,
  client: Client,
): Promise<Recovery[]> {
  await page.goto(`${server.url}/bench/recovery.html`);
  await page.waitForFunction('typeof window.benchRecovery === "object"');
  await page.evaluate((c: Client) => {
    const bench = (globalThis as unknown as PageBench).benchRecovery;
    return c.raw ? bench.startRaw() : bench.startElement(c.name, c.backoffInitial);
  }, client);
  const offset = await clockOffset(page);
  const recoveries: Recovery[] = [];
  for (let i = 0; i < RESTARTS; i++) {
    await sleep(SETTLE_MS);
    const signalled = nodeNow();
    await server.restart();
    const listening = nodeNow() - signalled;
    const since = signalled + offset;
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
    const first = (type: string) => entries.find((e) => e.type === type)!.at - since;
    const connected = first('connected');
    recoveries.push({
      connected,
      synced: first('synced'),
      listening,
      // dials scheduled after the drop until connected; the last one is the one that opened
      dials: entries.filter((e) => e.type === 'dial' && e.at - since < connected).length,
    });
  }
  return recoveries;
}

const median = (values: readonly number[]) => percentile(values, 50);

export async function run(): Promise<Row[]> {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const variants = {
      element: { name: 'default', raw: false },
      element50: { name: 'fast', raw: false, backoffInitial: 50 },
      raw: { name: 'raw', raw: true },
    } satisfies Record<string, Client>;
    const results = {} as Record<keyof typeof variants, Recovery[]>;
    for (const [name, client] of Object.entries(variants) as [keyof typeof variants, Client][]) {
      const context = await browser.createBrowserContext();
      try {
        const page = await context.newPage();
        page.on('pageerror', (error) => console.error('page error:', error));
        results[name] = await measure(server, page, client);
      } finally {
        await context.close();
      }
      const r = results[name];
      const fmt = (key: keyof Recovery) => r.map((x) => Math.round(x[key])).join(' ');
      process.stderr.write(
        `recovery (${name}): to connected ms [${fmt('connected')}], to synced [${fmt('synced')}], ` +
          `server listening [${fmt('listening')}], dials until connected [${fmt('dials')}]\n`,
      );
    }
    const pick = (name: keyof typeof variants, key: keyof Recovery) => median(results[name].map((x) => x[key]));
    /** The client's own share: from the new server listening to connected, on the same restart. */
    const afterListening = (name: keyof typeof variants) => median(results[name].map((x) => x.connected - x.listening));
    const baselineName = 'plain WebSocket in the page redialling 50 ms after each failure, then sync';
    const n = `median of ${RESTARTS}`;
    return [
      { what: `server restart (SIGTERM, start again) to the new server listening, median of all ${3 * RESTARTS}`, ours: median(Object.values(results).flat().map((x) => x.listening)), baseline: null, unit: 'ms', better: 'lower', baselineName: 'none: the floor for any client' },
      { what: `server restart to connected, default backoff (500 ms, full jitter), ${n}`, ours: pick('element', 'connected'), baseline: pick('raw', 'connected'), unit: 'ms', better: 'lower', baselineName: `${baselineName} (to open)` },
      { what: `server restart to sync_completed, default backoff, ${n}`, ours: pick('element', 'synced'), baseline: pick('raw', 'synced'), unit: 'ms', better: 'lower', baselineName: `${baselineName} (to sync_complete)` },
      { what: `server restart to connected, backoff-initial="50", ${n}`, ours: pick('element50', 'connected'), baseline: pick('raw', 'connected'), unit: 'ms', better: 'lower', baselineName: `${baselineName} (to open)` },
      { what: `server restart to sync_completed, backoff-initial="50", ${n}`, ours: pick('element50', 'synced'), baseline: pick('raw', 'synced'), unit: 'ms', better: 'lower', baselineName: `${baselineName} (to sync_complete)` },
      { what: `new server listening to connected, default backoff, ${n}`, ours: afterListening('element'), baseline: afterListening('raw'), unit: 'ms', better: 'lower', baselineName: `${baselineName} (to open)` },
      { what: `new server listening to connected, backoff-initial="50", ${n}`, ours: afterListening('element50'), baseline: afterListening('raw'), unit: 'ms', better: 'lower', baselineName: `${baselineName} (to open)` },
    ];
  } finally {
    await browser.close();
    await removeServer(server);
  }
}
