/**
 * Scopes: what they cost and save. (1) Fan-out: CLIENTS clients in SCOPES scopes (10 a scope by
 * default), one change at a time to one scope: delivery p99 to the clients of that scope and the
 * server's CPU per change, beside the same clients on a server without scopes, where every client
 * gets every change (the server before scopes), in the same run. Server and clients are child
 * processes on 127.0.0.1. (2) Catch-up: a client that may see 1% of a log of LOG_CHANGES changes
 * (one scope of 100) beside one that sees all of it, on the embedded log, through a real socket.
 * Nothing here asserts a time.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { isRecord } from '../src/protocol/change.ts';
import { FileSyncStore } from '../server/store.ts';
import { createSyncServer } from '../server/sync-server.ts';
import { jsonLines, spawnNode, stop } from './lib/children.ts';
import type { Row } from './lib/harness.ts';

const CLIENTS = Number(process.env.BENCH_SCOPED_CLIENTS ?? 10_000);
const SCOPES = Number(process.env.BENCH_SCOPES ?? 1_000);
const CHANGES = Number(process.env.BENCH_SCOPED_CHANGES ?? 40);
const LOG_CHANGES = Number(process.env.BENCH_LOG_CHANGES ?? 200_000);
const LOG_SCOPES = 100;

interface FanOut { live: number; failed: number; deliveries: number; missed: number; p50: number; p99: number; emptyBatches: number; cpuMsPerChange: number }

/** CPU time (user + system) a process has used, in ms, from /proc. */
async function cpuMs(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

async function fanOut(mode: 'scoped' | 'open', live: Set<ChildProcess>): Promise<FanOut> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-bench-scopes-'));
  const server = spawnNode(['bench/lib/scoped-server.ts', mode, dataDir], live, true);
  try {
    const port = Number((await jsonLines(server)('listening', 30_000)).port);
    const clients = spawnNode([
      'bench/lib/scoped-clients.ts', `ws://127.0.0.1:${port}/api/sync`, String(CLIENTS), String(SCOPES), mode === 'open' ? '1' : '0',
      `http://127.0.0.1:${port}/api/changes`, String(CHANGES), '2',
    ], live);
    try {
      const next = jsonLines(clients);
      const ready = await next('ready', 180_000);
      process.stderr.write(`scopes (${mode}): ${String(ready.live)} of ${CLIENTS} clients live in ${Math.round(Number(ready.connectMs))} ms (${String(ready.failed)} failed)\n`);
      const before = await cpuMs(server.pid);
      clients.stdin!.write('go\n');
      const result = await next('result', 300_000);
      const cpu = (await cpuMs(server.pid)) - before;
      process.stderr.write(`scopes (${mode}): ${JSON.stringify(result)}, server CPU ${cpu} ms\n`);
      return { ...(result as unknown as Omit<FanOut, 'cpuMsPerChange' | 'failed'>), failed: Number(ready.failed), cpuMsPerChange: cpu / (CHANGES + 2) };
    } finally {
      await stop(clients);
    }
  } finally {
    await stop(server);
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Ms from `sync` to `sync_complete` for a client holding `token`, and the changes it was sent. */
function catchUp(url: string, token: string): Promise<{ ms: number; changes: number }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    let changes = 0;
    let started = 0;
    socket.on('open', () => {
      started = performance.now();
      socket.send(JSON.stringify({ type: 'sync', clientId: `bench-${token}`, lastLSN: '0/0', token }));
    });
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; changes?: unknown[] };
      if (frame.type === 'changes') changes += frame.changes?.length ?? 0;
      if (frame.type === 'sync_complete') {
        resolve({ ms: performance.now() - started, changes });
        socket.close();
      }
    });
    socket.on('error', reject);
  });
}

async function catchUps(): Promise<{ scoped: { ms: number; changes: number }; all: { ms: number; changes: number } }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-bench-scoped-log-'));
  const scopeOf = ({ data }: { data: unknown }) => (isRecord(data) && typeof data.scope === 'string' ? data.scope : 'none');
  const { store } = await FileSyncStore.open(dataDir, { scopeOf });
  const server = await createSyncServer({
    port: 0,
    store,
    heartbeatInterval: 0,
    authenticate: (token) => (token === 'admin' ? { id: 'admin', scopes: ['*'] } : token ? { id: token, scopes: [token] } : null),
  });
  try {
    const filled = performance.now();
    for (let from = 0; from < LOG_CHANGES; from += 2000) {
      const appends = [];
      for (let i = from; i < Math.min(LOG_CHANGES, from + 2000); i += 1) {
        appends.push(store.append([{ type: 'update', entityType: 'item', entityId: `i${i % 20_000}`, data: { scope: `s${i % LOG_SCOPES}`, i, text: 'x'.repeat(40) } }]));
      }
      await Promise.all(appends);
    }
    process.stderr.write(`scopes: a log of ${LOG_CHANGES} changes written in ${Math.round(performance.now() - filled)} ms\n`);
    const url = `ws://127.0.0.1:${server.port}/api/sync`;
    // Each twice, alternating; the better of the two.
    const runs = { scoped: [] as { ms: number; changes: number }[], all: [] as { ms: number; changes: number }[] };
    for (let round = 0; round < 2; round += 1) {
      runs.scoped.push(await catchUp(url, 's7'));
      runs.all.push(await catchUp(url, 'admin'));
    }
    const best = (list: { ms: number; changes: number }[]) => list.reduce((a, b) => (b.ms < a.ms ? b : a));
    process.stderr.write(`scopes: catch-up ${JSON.stringify(runs)}\n`);
    return { scoped: best(runs.scoped), all: best(runs.all) };
  } finally {
    await server.close();
    await store.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Row[]> {
  const live = new Set<ChildProcess>();
  const killAll = () => {
    for (const child of live) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  try {
    const scoped = await fanOut('scoped', live);
    const open = await fanOut('open', live);
    const { scoped: few, all } = await catchUps();
    const n = CLIENTS.toLocaleString('en-US');
    const baselineName = `no scopes: every client gets every change (${n} clients)`;
    const fanout = `one change to one scope of ${SCOPES.toLocaleString('en-US')}, ${n} clients (${Math.round(CLIENTS / SCOPES)} a scope)`;
    const log = LOG_CHANGES.toLocaleString('en-US');
    return [
      { what: `${fanout}: clients live (scoped; baseline open)`, ours: scoped.live, baseline: open.live, unit: '', better: 'higher', baselineName },
      { what: `${fanout}: delivery p50 to its scope's clients`, ours: scoped.p50, baseline: open.p50, unit: 'ms', better: 'lower', baselineName },
      { what: `${fanout}: delivery p99 to its scope's clients`, ours: scoped.p99, baseline: open.p99, unit: 'ms', better: 'lower', baselineName },
      { what: `${fanout}: server CPU per change (empty batches that move resume points included)`, ours: scoped.cpuMsPerChange, baseline: open.cpuMsPerChange, unit: 'ms', better: 'lower', baselineName },
      { what: `catch-up from 0/0 of a ${log}-change log, a client that may see 1% (${few.changes} changes)`, ours: few.ms, baseline: all.ms, unit: 'ms', better: 'lower', baselineName: `a client that sees all ${all.changes} changes, same log, same run` },
    ];
  } finally {
    await Promise.all([...live].map(stop));
    process.off('exit', killAll);
  }
}
