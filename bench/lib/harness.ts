/**
 * Shared pieces of the benchmarks: a reference server in a child process, headless Chromium, and
 * the row format every benchmark returns. Nothing here asserts a time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import puppeteer, { type Browser } from 'puppeteer-core';
// @ts-expect-error a plain ESM helper shared with the test runner config
import { findChrome } from '../../scripts/find-chrome.mjs';

/** One line of the table: what, our figure, the baseline measured in the same run, their ratio. */
export interface Row {
  what: string;
  ours: number;
  baseline: number | null;
  unit: string;
  /** `higher` when more is better (throughput), `lower` when less is (latency, bytes). */
  better: 'higher' | 'lower';
  baselineName?: string;
}

export interface BenchServer {
  url: string;
  wsUrl: string;
  dataDir: string;
  child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts again on the same port and data directory. */
  restart(): Promise<void>;
  /** Starts a stopped server again on the same port and data directory. */
  startAgain(): Promise<void>;
}

/**
 * Starts the reference server as a child process on a free port with a fresh data directory: this
 * checkout's, or the one at `cwd` (an earlier version, measured in the same run).
 */
export async function startServer(extraArgs: string[] = [], cwd?: string): Promise<BenchServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-bench-'));
  let port = 0;
  const launch = async (): Promise<{ child: ChildProcess; url: string }> => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir, ...extraArgs], {
      stdio: ['ignore', 'pipe', 'ignore'],
      ...(cwd === undefined ? {} : { cwd }),
    });
    for await (const line of createInterface({ input: child.stdout! })) {
      try {
        const event = JSON.parse(line) as { event?: string; url?: string; port?: number };
        if (event.event === 'listening' && event.url && event.port) {
          port = event.port;
          return { child, url: event.url };
        }
      } catch {
        // not the listening line
      }
    }
    throw new Error('the reference server exited before listening');
  };
  const first = await launch();
  const server: BenchServer = {
    url: first.url,
    wsUrl: `${first.url.replace(/^http/, 'ws')}/api/sync`,
    dataDir,
    child: first.child,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (server.child.exitCode !== null || server.child.signalCode !== null) return;
      const exited = new Promise((resolve) => server.child.once('exit', resolve));
      server.child.kill(signal);
      await exited;
    },
    async restart() {
      await server.stop();
      await server.startAgain();
    },
    async startAgain() {
      server.child = (await launch()).child;
    },
  };
  return server;
}

export async function removeServer(server: BenchServer): Promise<void> {
  await server.stop();
  await rm(server.dataDir, { recursive: true, force: true });
}

export function launchBrowser(extraArgs: string[] = []): Promise<Browser> {
  return puppeteer.launch({
    executablePath: findChrome(),
    headless: true,
    // One measurement is one evaluate call: on a loaded machine it can take longer than the default 3 minutes.
    protocolTimeout: 30 * 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--no-default-browser-check', ...extraArgs],
  });
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}
