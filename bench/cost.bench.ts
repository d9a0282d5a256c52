/**
 * What a change and an operation cost the browser, now and before the client-speed work (#15):
 * - Chromium CPU from a trace of the run (thread CPU time of the page's main thread, the
 *   element's worker, the rest of the page's renderer and the browser process, where IndexedDB
 *   runs), per change for a catch-up of BENCH_COST_CHANGES changes (default 100,000, frames of
 *   1,000) into a fresh database and per operation for BENCH_COST_OPERATIONS operations (default
 *   10,000) queued at once; each until everything is written: the resume point at the server's
 *   head, the outbox empty, every segment folded;
 * - the IndexedDB writes and transactions the page and the worker asked for meanwhile, counted
 *   by bench-only wrappers of the IndexedDB prototypes (bench/idb-counting.js).
 * The baseline is the same measurement of the build of BEFORE_COMMIT (bench/lib/before-build.ts),
 * served beside the current one by the same reference server. One run of each, ours first.
 */
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'puppeteer-core';
import { BEFORE_COMMIT, beforeDist } from './lib/before-build.ts';
import { loadCatchUpLog } from './lib/catchup-log.ts';
import { launchBrowser, removeServer, startServer, type BenchServer, type Row } from './lib/harness.ts';
import { markTime, traceCpu, type TraceCpu } from './lib/trace-cpu.ts';

const CHANGES = Number(process.env.BENCH_COST_CHANGES ?? 100_000);
const OPERATIONS = Number(process.env.BENCH_COST_OPERATIONS ?? 10_000);
const PER_RECORD = 1_000;

type Build = 'ours' | 'before';
interface Counts { put: number; add: number; delete: number; clear: number; cursorUpdate: number; cursorDelete: number; readwrite: number; readonly: number }
interface Counted { seconds: number; counts: { page: Counts; worker: Counts } }
interface PageResult extends Counted { build: Build; readable?: Counted }
interface Cost { cpu: TraceCpu; seconds: number; written: number; deletes: number; readwrite: number; readonly: number; readable?: Cost }

const root = fileURLToPath(new URL('..', import.meta.url));
const BENCH_FILES = ['cost.html', 'cost.js', 'idb-counting.js', 'idb-counting-worker.js'];

async function copyScripts(from: string, to: string, only?: readonly string[]): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const name of await readdir(from)) {
    if (only ? only.includes(name) : name.endsWith('.js')) await copyFile(join(from, name), join(to, name));
  }
}

/** A root for the server's static files: this page, the current bundle at /dist/ and the one before at /dist/before/. */
async function staticRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sync-bench-cost-'));
  await copyScripts(join(root, 'bench'), join(dir, 'bench'), BENCH_FILES);
  await copyScripts(join(root, 'dist'), join(dir, 'dist'));
  await copyScripts(await beforeDist(), join(dir, 'dist', 'before'));
  return dir;
}

function sum(counts: { page: Counts; worker: Counts }, keys: readonly (keyof Counts)[]): number {
  return keys.reduce((total, key) => total + counts.page[key] + counts.worker[key], 0);
}

/** Runs `body` in a page of `build` while Chromium traces, and reads the trace's CPU and the counts. */
async function traced(browser: Browser, server: BenchServer, build: Build, prepare: (page: Page) => Promise<void>, body: (page: Page) => Promise<PageResult>): Promise<Cost> {
  const page = await browser.newPage();
  try {
    page.on('pageerror', (error) => console.error('page error:', error));
    await page.goto(`${server.url}/bench/cost.html?build=${build}`);
    await page.waitForFunction('typeof window.benchCost === "object"');
    await prepare(page);
    await page.tracing.start({ categories: ['toplevel', '__metadata', 'blink.user_timing'] });
    let data: Uint8Array | undefined;
    const result = await body(page).finally(async () => { data = await page.tracing.stop(); });
    if (!data) throw new Error('the trace is empty');
    const trace: unknown = JSON.parse(Buffer.from(data).toString('utf8'));
    await page.evaluate(() => (globalThis as unknown as { benchCost: { cleanup(): Promise<void> } }).benchCost.cleanup());
    const cost = (cpu: TraceCpu, { seconds, counts }: Counted): Cost => ({
      cpu,
      seconds,
      written: sum(counts, ['put', 'add', 'cursorUpdate']),
      deletes: sum(counts, ['delete', 'cursorDelete', 'clear']),
      readwrite: sum(counts, ['readwrite']),
      readonly: sum(counts, ['readonly']),
    });
    const readable = result.readable && cost(traceCpu(trace, -Infinity, markTime(trace, 'bench-readable')), result.readable);
    return { ...cost(traceCpu(trace), result), ...(readable ? { readable } : {}) };
  } finally {
    await page.close();
  }
}

type BenchCost = Record<string, (options: object) => Promise<unknown>>;
const call = (page: Page, name: string, options: object) => page.evaluate(
  (fn, o) => (globalThis as unknown as { benchCost: BenchCost }).benchCost[fn]!(o), name, options,
);

function catchUp(browser: Browser, server: BenchServer, build: Build, head: string): Promise<Cost> {
  const name = `bench-cost-catchup-${build}-${Date.now().toString(36)}`;
  return traced(browser, server, build, async () => {}, (page) => call(page, 'catchUp', { name, head }) as Promise<PageResult>);
}

/** On a server of its own, so that the element connects to an empty log. */
async function operations(browser: Browser, build: Build, staticDir: string): Promise<Cost> {
  const server = await startServer(['--static-dir', staticDir]);
  try {
    const name = `bench-cost-operations-${build}-${Date.now().toString(36)}`;
    return await traced(browser, server, build,
      async (page) => { await call(page, 'connectForOperations', { name }); },
      (page) => call(page, 'operations', { count: OPERATIONS, entityType: `cost-${build}` }) as Promise<PageResult>);
  } finally {
    await removeServer(server);
  }
}

function log(what: string, build: Build, cost: Cost): void {
  const { cpu } = cost;
  const ms = (value: number) => `${value.toFixed(0)} ms`;
  process.stderr.write(`  ${what}, ${build}: ${cost.seconds.toFixed(2)} s; CPU page main ${ms(cpu.pageMain)}, worker ${ms(cpu.worker)}, `
    + `rest of the renderer ${ms(cpu.pageOther)}, browser ${ms(cpu.browser)}; IndexedDB records written ${cost.written}, deletes ${cost.deletes}, `
    + `readwrite transactions ${cost.readwrite}, readonly ${cost.readonly}\n`);
  if (cost.readable) log(`${what} (until sync_completed)`, build, cost.readable);
}

const BASELINE = `the build before #15 (${BEFORE_COMMIT}), same run`;
const total = (cpu: TraceCpu) => cpu.pageMain + cpu.worker + cpu.pageOther + cpu.browser;

/** Until `sync_completed`, when reads see the whole log: what the segments save before folding. */
function readableRows(what: string, count: number, ours: Cost, before: Cost): Row[] {
  if (!ours.readable || !before.readable) return [];
  const [now, then] = [ours.readable, before.readable];
  return [
    { what: `${what}: Chromium CPU per change, all`, ours: (total(now.cpu) * 1000) / count, baseline: (total(then.cpu) * 1000) / count, unit: 'µs', better: 'lower', baselineName: BASELINE },
    { what: `${what}: IndexedDB records written per change`, ours: now.written / count, baseline: then.written / count, unit: '', better: 'lower', baselineName: BASELINE },
  ];
}

function rows(what: string, per: string, count: number, ours: Cost, before: Cost): Row[] {
  const cpuRow = (part: string, pick: (cpu: TraceCpu) => number): Row => ({
    what: `${what}: Chromium CPU per ${per}, ${part}`,
    ours: (pick(ours.cpu) * 1000) / count, baseline: (pick(before.cpu) * 1000) / count, unit: 'µs', better: 'lower', baselineName: BASELINE,
  });
  const countRow = (part: string, pick: (cost: Cost) => number): Row => ({
    what: `${what}: ${part} per ${per}`, ours: pick(ours) / count, baseline: pick(before) / count, unit: '', better: 'lower', baselineName: BASELINE,
  });
  return [
    cpuRow("all (page's renderer + browser process, thread CPU from a trace)", total),
    cpuRow("the page's main thread", (cpu) => cpu.pageMain),
    cpuRow("the worker's thread", (cpu) => cpu.worker),
    cpuRow('the browser process (IndexedDB, network)', (cpu) => cpu.browser),
    countRow('IndexedDB records written (put, add)', (cost) => cost.written),
    countRow('IndexedDB deletes (a range delete counts once)', (cost) => cost.deletes),
    countRow('IndexedDB readwrite transactions', (cost) => cost.readwrite),
  ];
}

export async function run(): Promise<Row[]> {
  const staticDir = await staticRoot();
  const browser = await launchBrowser();
  try {
    const server = await startServer(['--static-dir', staticDir, '--batch-size', String(PER_RECORD)]);
    let catchUpOurs: Cost;
    let catchUpBefore: Cost;
    try {
      const head = await loadCatchUpLog(server, CHANGES, PER_RECORD);
      catchUpOurs = await catchUp(browser, server, 'ours', head);
      log('catch-up', 'ours', catchUpOurs);
      catchUpBefore = await catchUp(browser, server, 'before', head);
      log('catch-up', 'before', catchUpBefore);
    } finally {
      await removeServer(server);
    }
    const operationsOurs = await operations(browser, 'ours', staticDir);
    log('operations', 'ours', operationsOurs);
    const operationsBefore = await operations(browser, 'before', staticDir);
    log('operations', 'before', operationsBefore);
    return [
      ...readableRows(`catch-up of ${CHANGES.toLocaleString('en-US')} changes, until sync_completed`, CHANGES, catchUpOurs, catchUpBefore),
      ...rows(`catch-up of ${CHANGES.toLocaleString('en-US')} changes, until folded`, 'change', CHANGES, catchUpOurs, catchUpBefore),
      ...rows(`${OPERATIONS.toLocaleString('en-US')} operations queued at once, until acknowledged and written`, 'operation', OPERATIONS, operationsOurs, operationsBefore),
    ];
  } finally {
    await browser.close();
    await rm(staticDir, { recursive: true, force: true });
  }
}
