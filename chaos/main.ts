/**
 * `npm run chaos`: the chaos run, then the fuzzers of the client and of the server, in one
 * headless Chromium. Prints a table of faults and operations, and every violation with the seed
 * that replays it; exits 1 on any violation.
 */
import { randomInt } from 'node:crypto';
import type { Browser } from 'puppeteer-core';
import { launchBrowser, percentile } from '../bench/lib/harness.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chaosRun } from './chaos-run.ts';
import { clientFuzz } from './client-fuzz.ts';
import { FAULT_KINDS, FAULT_NAMES } from './faults.ts';
import { DEFAULTS, parseOptions, USAGE, type CliOptions } from './options.ts';
import { PageServer } from './page-server.ts';
import { ServerProcess } from './server-process.ts';
import { serverFuzz } from './server-fuzz.ts';
import { table } from './table.ts';

// Background tabs keep their timers: the run holds several tabs, only one of which is in front.
const BROWSER_ARGS = ['--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows'];

/** Both fuzzers, each on a fresh embedded-log server of its own. */
async function fuzzers(seed: number, frames: number, browser: Browser, pages: PageServer, log: (line: string) => void): Promise<string[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-chaos-fuzz-'));
  const servers = [
    new ServerProcess({ name: 'client-fuzz server', storeArgs: ['--data-dir', join(dataDir, 'client')] }),
    new ServerProcess({ name: 'server-fuzz server', storeArgs: ['--data-dir', join(dataDir, 'server')] }),
  ];
  try {
    for (const server of servers) await server.start();
    const client = await clientFuzz(seed, frames, browser, pages, servers[0]!);
    log(`client fuzz: ${client.frames} frames from a fake server over ${client.connections} connections; error events ` +
      `${[...client.errors].sort().map(([code, count]) => `${code} ${count}`).join(', ') || 'none'}; the queued operations then delivered to a real server`);
    const server = await serverFuzz(seed, frames, servers[1]!);
    log(`server fuzz: ${server.frames} frames over ${[...server.connections.values()].reduce((a, b) => a + b, 0)} connections ` +
      `(${[...server.connections].map(([kind, count]) => `${kind} ${count}`).join(', ')}); two well-behaved clients meanwhile: ${server.witnessOperations} operations`);
    return [...client.violations, ...server.violations];
  } finally {
    for (const server of servers) await server.stop('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The options that make a run what it was, for the command that replays it. */
function replayArguments(options: CliOptions): string {
  const args = [`--faults ${options.faults}`, `--frames ${options.frames}`, `--seed ${options.seed}`];
  if (options.lanes !== DEFAULTS.lanes) args.push(`--lanes ${options.lanes}`);
  if (options.intervalMs !== DEFAULTS.intervalMs) args.push(`--interval-ms ${options.intervalMs}`);
  if (options.postgres !== DEFAULTS.postgres) args.push(`--postgres ${options.postgres}`);
  if (options.kinds.length !== DEFAULTS.kinds.length) args.push(`--kinds ${options.kinds.join(',')}`);
  return args.join(' ');
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), () => randomInt(2 ** 32));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const log = (line: string): void => console.log(line);
  const replay = `npm run chaos -- ${replayArguments(options)}`;
  log(`chaos: seed ${options.seed} (replay: ${replay})`);
  const pages = await PageServer.start();
  const browser = await launchBrowser(BROWSER_ARGS);
  // Ended from outside: the servers end with their stdin, the browser is closed here.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`chaos: ${signal}, stopping (seed ${options.seed})`);
      void browser.close().finally(() => process.exit(130));
    });
  }
  const violations: string[] = [];
  try {
    const result = await chaosRun({
      faults: options.faults, seed: options.seed, lanes: options.lanes, postgres: options.postgres, kinds: options.kinds, verbose: options.verbose,
      pace: { intervalMs: options.intervalMs, maxInFlight: 20 }, log,
    }, browser, pages);
    violations.push(...result.violations);
    log(`\nchaos run: ${result.seconds.toFixed(0)} s; PostgreSQL: ${result.postgres}`);
    log(table(['fault', 'injected', 'survived', 'reconnected after, p50 ms', 'max ms'], FAULT_KINDS.filter((kind) => result.tally.injected.has(kind)).map((kind) => {
      const times = result.tally.recoveryMs.get(kind) ?? [];
      return [FAULT_NAMES[kind], result.tally.injected.get(kind) ?? 0, result.tally.survived.get(kind) ?? 0,
        times.length ? Math.round(percentile(times, 50)) : '-', times.length ? Math.max(...times) : '-'];
    })));
    log('');
    log(table(['operations, as their page was told', 'applied 0 times', 'once', 'more'], [...result.operations].sort().map(([fate, row]) => [fate, row.zero, row.once, row.more])));
    log('');
    log(table(['error events in the pages, by code', 'count'], [...result.clientErrors].sort().map(([code, count]) => [code, count])));
    if (options.frames > 0) {
      log('');
      violations.push(...await fuzzers(options.seed, options.frames, browser, pages, log));
    }
  } finally {
    await browser.close();
    await pages.close();
  }
  if (violations.length > 0) {
    console.error(`\n${violations.length} violation${violations.length === 1 ? '' : 's'} (seed ${options.seed}):`);
    for (const violation of violations.slice(0, 50)) console.error(`  - ${violation}`);
    if (violations.length > 50) console.error(`  ... and ${violations.length - 50} more`);
    console.error(`replay: ${replay}`);
    return 1;
  }
  log(`\nchaos: no violation (seed ${options.seed})`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
