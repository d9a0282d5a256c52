/**
 * Catch-up: the server's whole log (BENCH_CHANGES changes, default 100,000, about 200 bytes of
 * `data` each, in records of 1,000 so that every `changes` frame holds 1,000) taken from 0/0 into
 * a fresh IndexedDB database, beside two baselines measured in the same run:
 * - the physical limit: the same frames, downloaded first, written by raw IndexedDB puts from a
 *   dedicated worker, one transaction per frame, nothing awaited but the commit;
 * - the page-side design: a raw WebSocket on the page, one awaited put per change.
 * And the page's main thread meanwhile: long-task time and the longest gap between animation
 * frames, ours against the page-side design; plus the main thread's total task time (Chromium's
 * TaskDuration, wall time, so it includes time the thread was descheduled), which the first two
 * miss when the work comes as many short tasks. Each variant runs once, in its own page, ours first.
 */
import { randomBytes } from 'node:crypto';
import { loadCatchUpLog } from './lib/catchup-log.ts';
import { launchBrowser, removeServer, startServer, type BenchServer, type Row } from './lib/harness.ts';
import type { Browser } from 'puppeteer-core';

const CHANGES = Number(process.env.BENCH_CHANGES ?? 100_000);
const PER_RECORD = 1_000;

interface MainThread { windowMs: number; longTaskMs: number; longTasks: number; longestTaskMs: number; longestFrameGapMs: number; gapsOver50: number; frames: number }
interface Outcome { seconds: number; main: MainThread; busyMs: number; /** Ours: until the worker had folded every commit. */ foldedSeconds?: number }
interface Checked { stored: { entities: number; lastLSN: unknown }; deleted: boolean }
type Variant = 'ours' | 'pageSide' | 'limit';

/**
 * One variant in a fresh page, then checked outside the timing: every entity stored, the log's head
 * as the stored LSN, the database deleted. Also reads the page's main-thread busy time over the
 * variant from Chromium's own counter (CDP `TaskDuration`), for the log.
 */
async function measure(browser: Browser, server: BenchServer, variant: Variant, head: string): Promise<Outcome> {
  const page = await browser.newPage();
  try {
    page.on('pageerror', (error) => console.error('page error:', error));
    await page.goto(`${server.url}/bench/catchup.html`);
    await page.waitForFunction('typeof window.benchCatchup === "object"');
    const tag = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const before = await page.metrics();
    const outcome = (await page.evaluate(
      (name, options) => (globalThis as unknown as { benchCatchup: Record<string, (o: object) => Promise<unknown>> }).benchCatchup[name]!(options),
      variant, { dbName: `bench-catchup-${variant}-${tag}`, clientId: `catchup-${variant}-${tag}` },
    )) as Outcome;
    const after = await page.metrics();
    const { stored, deleted } = (await page.evaluate(
      () => (globalThis as unknown as { benchCatchup: { check(): Promise<unknown> } }).benchCatchup.check(),
    )) as Checked;
    const lsn = typeof stored.lastLSN === 'string' ? stored.lastLSN.toUpperCase() : stored.lastLSN;
    if (stored.entities !== CHANGES || lsn !== head.toUpperCase()) {
      throw new Error(`${variant} stored ${stored.entities} entities at ${String(stored.lastLSN)}, expected ${CHANGES} at ${head}`);
    }
    if (!deleted) console.error(`catchup: the ${variant} database could not be deleted`);
    const busy = ((after.TaskDuration ?? 0) - (before.TaskDuration ?? 0)) * 1000;
    const script = ((after.ScriptDuration ?? 0) - (before.ScriptDuration ?? 0)) * 1000;
    process.stderr.write(`  ${variant}: ${outcome.seconds.toFixed(2)} s; main thread busy ${busy.toFixed(0)} ms (script ${script.toFixed(0)} ms); ${JSON.stringify(outcome.main)}\n`);
    return { ...outcome, busyMs: busy };
  } finally {
    await page.close();
  }
}

export async function run(): Promise<Row[]> {
  const server = await startServer(['--batch-size', String(PER_RECORD)]);
  const browser = await launchBrowser();
  try {
    const head = await loadCatchUpLog(server, CHANGES, PER_RECORD);
    const ours = await measure(browser, server, 'ours', head);
    const limit = await measure(browser, server, 'limit', head);
    const pageSide = await measure(browser, server, 'pageSide', head);
    const rate = (outcome: Outcome) => CHANGES / outcome.seconds;
    const what = `catch-up of ${CHANGES.toLocaleString('en-US')} changes (frames of ${PER_RECORD.toLocaleString('en-US')}) into IndexedDB`;
    const limitName = 'physical limit: raw IndexedDB puts in a dedicated worker, 1 tx per frame, frames downloaded beforehand';
    const pageSideName = "page-side design: raw WebSocket on the page, 1 tx per frame, one awaited put per change";
    return [
      { what: `${what}: changes/s`, ours: rate(ours), baseline: rate(limit), unit: '/s', better: 'higher', baselineName: limitName },
      { what: `${what}: changes/s`, ours: rate(ours), baseline: rate(pageSide), unit: '/s', better: 'higher', baselineName: pageSideName },
      // Readable at sync_completed (the commits are stored whole); folded into one record per entity afterwards.
      { what: `${what}, until folded into one record per entity: changes/s`, ours: CHANGES / (ours.foldedSeconds ?? ours.seconds), baseline: rate(limit), unit: '/s', better: 'higher', baselineName: limitName },
      { what: 'main thread during that catch-up: long-task time', ours: ours.main.longTaskMs, baseline: pageSide.main.longTaskMs, unit: 'ms', better: 'lower', baselineName: pageSideName },
      { what: 'main thread during that catch-up: longest gap between frames', ours: ours.main.longestFrameGapMs, baseline: pageSide.main.longestFrameGapMs, unit: 'ms', better: 'lower', baselineName: pageSideName },
      // What the two rows above miss: the page-side design's main thread is busy in many short tasks.
      { what: 'main thread during that catch-up: time in tasks (Chromium TaskDuration)', ours: ours.busyMs, baseline: pageSide.busyMs, unit: 'ms', better: 'lower', baselineName: pageSideName },
    ];
  } finally {
    await browser.close();
    await removeServer(server);
  }
}
