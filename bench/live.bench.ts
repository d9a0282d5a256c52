/**
 * Live queries and local writes (issue #12), each beside a baseline measured in the same run:
 * - a local write reaching an observer in the same tab and in another tab (a second page of the
 *   same database, in the background), against today's pattern in apps (`getEntities` again on
 *   every `changes` and `operation_complete` event) and, across tabs, against the physical limit
 *   (a strict IndexedDB put, then one BroadcastChannel message);
 * - one server change reaching an observer of a type of BENCH_LIVE_ENTITIES entities, with the
 *   IndexedDB reads per change in the page and in the worker, against `getEntities` on every
 *   `changes` event, and against a raw WebSocket on the same page receiving the same change;
 * - the first `observe` result of that type against `getEntities`, and the page heap the
 *   observer holds against the entities' JSON size.
 * The entities are posted to the reference server (`POST /api/changes`, 1,000 a request) and
 * reach the page's database by one catch-up of the element itself.
 */
import { readFile } from 'node:fs/promises';
import type { Browser, CDPSession, Page, WebWorker } from 'puppeteer-core';
import { launchBrowser, percentile, removeServer, startServer, type BenchServer, type Row } from './lib/harness.ts';

const ENTITIES = Number(process.env.BENCH_LIVE_ENTITIES ?? 100_000);
const NOTES = 1_000;
const WRITES = Number(process.env.BENCH_LIVE_WRITES ?? 300);
const CHANGES = Number(process.env.BENCH_LIVE_CHANGES ?? 200);
const REREADS = Number(process.env.BENCH_LIVE_REREADS ?? 20);
/** Pairs of first results (observe, getEntities), in alternating order, after one pair to warm up. */
const FIRSTS = Number(process.env.BENCH_LIVE_FIRSTS ?? 5);
/**
 * Each variant runs in ROUNDS blocks, the variants' blocks taking turns, so that what else the
 * machine does at some moment weighs on all of them alike.
 */
const ROUNDS = 4;
const PER_POST = 1_000;
const DB_NAME = 'bench-live';

interface Reads { calls: number; records: number; wholeType: number; byMethod: Record<string, number> }
interface Changes { shown: number[]; received: number[]; heard: number[]; answered: number[]; reads: Reads }
/**
 * `posted`: when the writing tab's element posted its tab message carrying the write (after the
 * outbox commit); `relayed`: when that message reached the other tab; `handled`: from then to the
 * row shown there; `durable` (the limit): when its strict put committed.
 */
interface Writes { shown: number[]; acknowledged: number[]; posted: number[]; relayed: number[]; handled: number[]; durable: number[]; reads: Reads }
interface First { ms: number; rows: number; reads: Reads }

type Bench = Record<string, (options?: object) => Promise<unknown>>;

function call<T>(page: Page, name: string, options: object = {}): Promise<T> {
  return page.evaluate(
    (n, o) => (globalThis as unknown as { benchLive: Bench }).benchLive[n]!(o),
    name, options,
  ) as Promise<T>;
}

/** About 200 bytes of JSON per `data`, as in the catch-up benchmark. */
function data(i: number): object {
  return { n: i, text: `${i.toString(36)} `.repeat(60).slice(0, 180) };
}

async function post(server: BenchServer, changes: object[]): Promise<void> {
  const response = await fetch(`${server.url}/api/changes`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ changes }),
  });
  if (!response.ok) throw new Error(`POST /api/changes: ${response.status} ${await response.text()}`);
}

/** ENTITIES `item`s and NOTES `note`s, PER_POST to a request. */
async function seed(server: BenchServer): Promise<void> {
  const entity = (entityType: string, i: number) => ({ type: 'update', entityType, entityId: `${entityType}-${String(i).padStart(7, '0')}`, data: data(i) });
  for (let first = 0; first < ENTITIES; first += PER_POST) {
    await post(server, Array.from({ length: Math.min(PER_POST, ENTITIES - first) }, (_, k) => entity('item', first + k)));
  }
  await post(server, Array.from({ length: NOTES }, (_, i) => entity('note', i)));
}

async function openPage(browser: Browser, server: BenchServer): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error('page error:', error));
  page.on('console', (message) => { if (message.type() === 'error') console.error('page:', message.text()); });
  await page.goto(`${server.url}/bench/live.html`);
  await page.waitForFunction('typeof window.benchLive === "object"', { polling: 50 });
  return page;
}

// ---- IndexedDB reads ------------------------------------------------------------------------------

/** The sync worker of the leading page, with the read counter installed (it counts from now on). */
async function countWorkerReads(page: Page): Promise<WebWorker> {
  const source = await readFile(new URL('./idb-reads.js', import.meta.url), 'utf8');
  const deadline = Date.now() + 10_000;
  while (page.workers().length === 0) {
    if (Date.now() > deadline) throw new Error('the leading page has no worker');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const worker = page.workers()[0]!;
  await worker.evaluate(source);
  return worker;
}

function workerReads(worker: WebWorker): Promise<Reads> {
  return worker.evaluate(() => {
    const { calls, records, wholeType } = (globalThis as unknown as { benchIdbReads: { calls: Record<string, number>; records: number; wholeType: number } }).benchIdbReads;
    return { calls: Object.values(calls).reduce((sum, n) => sum + n, 0), records, wholeType, byMethod: { ...calls } };
  });
}

/** `a + sign * b`, method by method. */
function combine(a: Reads, b: Reads, sign: 1 | -1): Reads {
  const byMethod: Record<string, number> = { ...a.byMethod };
  for (const [method, n] of Object.entries(b.byMethod)) byMethod[method] = (byMethod[method] ?? 0) + sign * n;
  for (const [method, n] of Object.entries(byMethod)) if (n === 0) delete byMethod[method];
  return { calls: a.calls + sign * b.calls, records: a.records + sign * b.records, wholeType: a.wholeType + sign * b.wholeType, byMethod };
}

function sum(reads: readonly Reads[]): Reads {
  return reads.reduce((total, r) => combine(total, r, 1), { calls: 0, records: 0, wholeType: 0, byMethod: {} });
}

const perChange = (reads: Reads, n: number) =>
  `${(reads.calls / n).toFixed(2)} reads (${(reads.wholeType / n).toFixed(2)} whole-type, ${(reads.records / n).toFixed(1)} records) ${JSON.stringify(reads.byMethod)}`;

// ---- figures --------------------------------------------------------------------------------------

const median = (values: readonly number[]) => percentile(values, 50);
const p99 = (values: readonly number[]) => percentile(values, 99);
const fmt = (values: readonly number[]) => `p50 ${median(values).toFixed(2)} / p99 ${p99(values).toFixed(2)} / max ${Math.max(...values).toFixed(2)} ms`;
const log = (line: string) => process.stderr.write(`  ${line}\n`);

/** The blocks of one variant, joined: latencies end to end, reads added up. */
function joinChanges(blocks: readonly Changes[]): Changes {
  return {
    shown: blocks.flatMap((b) => b.shown), received: blocks.flatMap((b) => b.received),
    heard: blocks.flatMap((b) => b.heard), answered: blocks.flatMap((b) => b.answered), reads: sum(blocks.map((b) => b.reads)),
  };
}

function joinWrites(blocks: readonly Writes[]): Writes {
  return {
    shown: blocks.flatMap((b) => b.shown), acknowledged: blocks.flatMap((b) => b.acknowledged),
    posted: blocks.flatMap((b) => b.posted), relayed: blocks.flatMap((b) => b.relayed), handled: blocks.flatMap((b) => b.handled), durable: blocks.flatMap((b) => b.durable), reads: sum(blocks.map((b) => b.reads)),
  };
}

/** The page's used JS heap after two full collections. */
async function heapUsed(cdp: CDPSession): Promise<number> {
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.collectGarbage');
  return (await cdp.send('Runtime.getHeapUsage')).usedSize;
}

// ---- the measurements -----------------------------------------------------------------------------

/** First results, observe and getEntities alternating which goes first; the first pair warms up. */
async function firstResults(page: Page): Promise<{ observe: number[]; read: number[] }> {
  const observe: number[] = [];
  const read: number[] = [];
  for (let pair = 0; pair <= FIRSTS; pair++) {
    const order = pair % 2 === 0 ? ['observe', 'getEntities'] : ['getEntities', 'observe'];
    for (const kind of order) {
      const result = await call<First>(page, 'firstResult', { entityType: 'item', kind });
      if (result.rows !== ENTITIES) throw new Error(`${kind} gave ${result.rows} rows, not ${ENTITIES}`);
      if (pair === 0) log(`first ${kind} (warm-up): ${result.ms.toFixed(0)} ms, ${perChange(result.reads, 1)}`);
      else (kind === 'observe' ? observe : read).push(result.ms);
    }
  }
  log(`first observe result: ${observe.map((ms) => ms.toFixed(0)).join(', ')} ms; getEntities: ${read.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  return { observe, read };
}

/** Heap held by a running observer and by a kept `getEntities` array, and the rows' JSON size. */
async function heldHeap(page: Page, cdp: CDPSession): Promise<{ observer: number; array: number; json: number }> {
  const held = async (kind: string) => {
    const before = await heapUsed(cdp);
    await call(page, 'hold', { entityType: 'item', kind });
    const holding = await heapUsed(cdp);
    const json = await call<number>(page, 'heldJsonBytes');
    await call(page, 'release');
    const after = await heapUsed(cdp);
    const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
    log(`heap held by ${kind}: ${mib(holding - before)} MiB (before ${mib(before)}, after release ${mib(after)} MiB); rows as JSON ${mib(json)} MiB`);
    return { bytes: holding - before, json };
  };
  const observer = await held('observe');
  const array = await held('getEntities');
  return { observer: observer.bytes, array: array.bytes, json: observer.json };
}

/** Server changes in rounds: the observer (a raw socket receiving beside it) and the re-reads take turns. */
async function serverChanges(page: Page, worker: WebWorker): Promise<{ observed: Changes; reread: Changes; workerReads: { observed: Reads; reread: Reads } }> {
  const blocks = { observe: [] as Changes[], reread: [] as Changes[] };
  const inWorker = { observe: [] as Reads[], reread: [] as Reads[] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [mode, count] of [['observe', CHANGES], ['reread', REREADS]] as const) {
      const before = await workerReads(worker);
      blocks[mode].push(await call<Changes>(page, 'serverChanges', {
        entityType: 'item', size: ENTITIES, count: Math.ceil(count / ROUNDS), phase: `change-${mode}-${round}`, mode, paired: mode === 'observe',
      }));
      inWorker[mode].push(combine(await workerReads(worker), before, -1));
    }
  }
  const observed = joinChanges(blocks.observe);
  const reread = joinChanges(blocks.reread);
  const workerTotals = { observed: sum(inWorker.observe), reread: sum(inWorker.reread) };
  for (const [mode, result, workerSide] of [['observe', observed, workerTotals.observed], ['reread', reread, workerTotals.reread]] as const) {
    const n = result.shown.length;
    const parts = [`shown ${fmt(result.shown)}`, `POST answered ${fmt(result.answered)}`, `page's changes event ${fmt(result.heard)}`];
    if (result.received.length) {
      parts.push(`raw socket ${fmt(result.received)}`, `changes event minus raw socket (the worker's share) ${fmt(result.heard.map((t, i) => t - result.received[i]!))}`);
    }
    parts.push(`shown after the changes event ${fmt(result.shown.map((t, i) => t - result.heard[i]!))}`);
    log(`server change, ${mode} (${n}): ${parts.join('; ')}`);
    log(`  IndexedDB per change: page ${perChange(result.reads, n)}; worker ${perChange(workerSide, n)}`);
  }
  return { observed, reread, workerReads: workerTotals };
}

type WriteVariant = 'same-observe' | 'same-reread' | 'other-observe' | 'other-reread' | 'other-limit';

/** Local writes in rounds, the five variants taking turns; the reader page watches for `other-*`. */
async function localWrites(writer: Page, reader: Page): Promise<Record<WriteVariant, Writes>> {
  const variants: WriteVariant[] = ['same-observe', 'same-reread', 'other-observe', 'other-reread', 'other-limit'];
  const blocks = Object.fromEntries(variants.map((v) => [v, [] as Writes[]])) as Record<WriteVariant, Writes[]>;
  for (let round = 0; round < ROUNDS; round++) {
    for (const variant of variants) {
      const [where, mode] = variant.split('-') as ['same' | 'other', string];
      const phase = `${variant}-${round}`;
      const count = Math.ceil(WRITES / ROUNDS);
      await call(reader, 'follow', { phase, mode: where === 'other' ? mode : 'none' });
      blocks[variant].push(mode === 'limit'
        ? await call<Writes>(writer, 'limitWrites', { count, phase, notes: NOTES, dbName: `${DB_NAME}-limit` })
        : await call<Writes>(writer, 'localWrites', { count, phase, where, mode, notes: NOTES }));
    }
  }
  await call(reader, 'follow', { mode: 'none' });
  const results = Object.fromEntries(variants.map((v) => [v, joinWrites(blocks[v])])) as Record<WriteVariant, Writes>;
  for (const [variant, result] of Object.entries(results)) {
    const n = result.shown.length;
    const parts = [`shown ${fmt(result.shown)}`];
    if (result.durable.length) parts.push(`committed ${fmt(result.durable)}`);
    if (result.posted.length) parts.push(`the element posted its tab message ${fmt(result.posted)}`);
    if (result.relayed.length) {
      parts.push(`the element's message reached the other tab ${fmt(result.relayed)} (${result.relayed.length} of ${n}), shown there after ${fmt(result.handled)} more`);
    }
    if (result.acknowledged.length) parts.push(`acknowledged ${fmt(result.acknowledged)}`, `writer's page reads per write ${(result.reads.calls / n).toFixed(2)}`);
    log(`write, ${variant} (${n}): ${parts.join('; ')}`);
  }
  return results;
}

export async function run(): Promise<Row[]> {
  const server = await startServer(['--batch-size', String(PER_POST)]);
  const browser = await launchBrowser();
  try {
    let started = Date.now();
    await seed(server);
    const seeded = (Date.now() - started) / 1000;
    const writer = await openPage(browser, server);
    const caughtUp = await call<{ seconds: number; role: string }>(writer, 'start', { dbName: DB_NAME, lead: true });
    log(`seeded ${ENTITIES.toLocaleString('en-US')} items and ${NOTES} notes by POST in ${seeded.toFixed(1)} s; the element's catch-up (${caughtUp.role}) took ${caughtUp.seconds.toFixed(1)} s`);
    const worker = await countWorkerReads(writer);
    const cdp = await writer.createCDPSession();

    started = Date.now();
    const firsts = await firstResults(writer);
    const heap = await heldHeap(writer, cdp);
    log(`first results and heap: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    started = Date.now();
    const changes = await serverChanges(writer, worker);
    log(`server changes: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    started = Date.now();
    const reader = await openPage(browser, server);
    const following = await call<{ role: string }>(reader, 'start', { dbName: DB_NAME, lead: false });
    await writer.bringToFront();
    const clocks = await call<{ rtt: number; offset: number }>(writer, 'syncClocks');
    log(`other tab: ${following.role}, ${await reader.evaluate('document.visibilityState')}; its clock ${clocks.offset.toFixed(2)} ms ahead (round trip ${clocks.rtt.toFixed(2)} ms)`);
    const writes = await localWrites(writer, reader);
    log(`local writes: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const n = ENTITIES.toLocaleString('en-US');
    const pick = (p: 'p50' | 'p99', values: number[]) => (p === 'p50' ? median(values) : p99(values));
    const reread = "today's pattern: getEntities (1,000 notes) again on each changes / operation_complete event";
    const limit = 'physical limit: a strict-durability IndexedDB put, then one BroadcastChannel message';
    const rereadAll = `getEntities on every changes event (${changes.reread.shown.length} changes)`;
    const socket = 'a raw WebSocket on the same page receiving the same change, nothing stored';
    const write = (where: 'same' | 'other', p: 'p50' | 'p99', baseline: WriteVariant, baselineName: string): Row => ({
      what: `local write to an observer, ${where === 'same' ? 'same tab' : 'another tab'}: ${p}`,
      ours: pick(p, writes[`${where}-observe`].shown), baseline: pick(p, writes[baseline].shown), unit: 'ms', better: 'lower', baselineName,
    });
    const change = (p: 'p50' | 'p99', baseline: number[], baselineName: string): Row => ({
      what: `one server change to an observer of ${n} entities: ${p}`,
      ours: pick(p, changes.observed.shown), baseline: pick(p, baseline), unit: 'ms', better: 'lower', baselineName,
    });
    const perOurs = changes.observed.shown.length;
    const perBaseline = changes.reread.shown.length;
    return [
      write('same', 'p50', 'same-reread', reread),
      write('same', 'p99', 'same-reread', reread),
      write('other', 'p50', 'other-reread', reread),
      write('other', 'p99', 'other-reread', reread),
      write('other', 'p50', 'other-limit', limit),
      write('other', 'p99', 'other-limit', limit),
      change('p50', changes.reread.shown, rereadAll),
      change('p99', changes.reread.shown, rereadAll),
      change('p50', changes.observed.received, socket),
      change('p99', changes.observed.received, socket),
      {
        what: 'that server change: whole-type IndexedDB reads per change (page)',
        ours: changes.observed.reads.wholeType / perOurs, baseline: changes.reread.reads.wholeType / perBaseline, unit: '', better: 'lower', baselineName: rereadAll,
      },
      {
        what: 'that server change: IndexedDB records read per change (page + worker)',
        ours: (changes.observed.reads.records + changes.workerReads.observed.records) / perOurs,
        baseline: (changes.reread.reads.records + changes.workerReads.reread.records) / perBaseline,
        unit: '', better: 'lower', baselineName: rereadAll,
      },
      {
        what: `first observe result of ${n} entities (median of ${FIRSTS})`, ours: median(firsts.observe), baseline: median(firsts.read), unit: 'ms', better: 'lower',
        baselineName: 'getEntities of the same type: one IndexedDB getAll, whose per-record read cost is the limit',
      },
      { what: `page heap held by that observer (${n} entities)`, ours: heap.observer / 2 ** 20, baseline: heap.json / 2 ** 20, unit: 'MiB', better: 'lower', baselineName: 'the same entities as JSON text' },
      { what: `page heap held by that observer (${n} entities)`, ours: heap.observer / 2 ** 20, baseline: heap.array / 2 ** 20, unit: 'MiB', better: 'lower', baselineName: "getEntities' array of the same, kept" },
    ];
  } finally {
    await browser.close();
    await removeServer(server);
  }
}
