/**
 * `npm run bench`: starts the reference server, drives headless Chromium through the benchmark
 * pages and prints one markdown table, each figure beside a baseline measured in the same run.
 * Also writes bench/results.json. Benchmarks are not tests: nothing here asserts a time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import puppeteer from 'puppeteer-core';
// @ts-expect-error a plain ESM helper shared with the test runner config
import { findChrome } from '../scripts/find-chrome.mjs';

interface Summary { count: number; seconds: number; perSecond: number; p50: number; p99: number }
interface Pair { ours: Summary; baseline: Summary }

const BURST = Number(process.env.BENCH_OPERATIONS ?? 10_000);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 1_000);

async function startServer(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) {
    try {
      const event = JSON.parse(line) as { event?: string; url?: string };
      if (event.event === 'listening' && event.url) return { child, url: event.url };
    } catch {
      // not the listening line
    }
  }
  throw new Error('the reference server exited before listening');
}

const fixed = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function rows(name: string, pair: Pair): string[][] {
  return [
    [`${name}: operations/s`, fixed(pair.ours.perSecond), fixed(pair.baseline.perSecond), `${fixed(pair.ours.perSecond / pair.baseline.perSecond, 2)}x`],
    [`${name}: latency p50 (ms)`, fixed(pair.ours.p50, 1), fixed(pair.baseline.p50, 1), `${fixed(pair.ours.p50 / pair.baseline.p50, 2)}x`],
    [`${name}: latency p99 (ms)`, fixed(pair.ours.p99, 1), fixed(pair.baseline.p99, 1), `${fixed(pair.ours.p99 / pair.baseline.p99, 2)}x`],
  ];
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-bench-'));
  const { child, url } = await startServer(dataDir);
  const browser = await puppeteer.launch({
    executablePath: findChrome(),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--no-default-browser-check'],
  });
  try {
    const page = await browser.newPage();
    page.on('pageerror', (error) => console.error('page error:', error));
    await page.goto(`${url}/bench/operations.html`);
    await page.waitForFunction('typeof window.benchOperations === "function"');
    const result = await page.evaluate(
      (burst, sequential) => (globalThis as unknown as { benchOperations(o: object): Promise<unknown> }).benchOperations({ burst, sequential }),
      BURST, SEQUENTIAL,
    ) as { burst: Pair; sequential: Pair };

    const table = [
      ['what', 'ours', 'baseline (same run)', 'ratio'],
      ...rows(`${fixed(BURST)} queued at once, to ack`, result.burst),
      ...rows(`${fixed(SEQUENTIAL)} one at a time, to ack`, result.sequential),
    ];
    const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
    const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
    console.log(`\nOperations: <sync-connection> (IndexedDB outbox, worker, socket) vs. a raw WebSocket from the page; ${cpus().length} cores, ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(line(table[0]!));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of table.slice(1)) console.log(line(r));
    await writeFile(new URL('./results.json', import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), operations: result }, null, 2)}\n`);
  } finally {
    await browser.close();
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
