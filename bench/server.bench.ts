/**
 * The reference server holding many WebSocket clients, and one change's fan-out to all of them,
 * beside a minimal `ws` broadcast server (no store, no protocol) and the floor (one write of a
 * prebuilt frame per socket, no WebSocket library) with the same clients in the same run. Everything runs on 127.0.0.1 in child processes (server, then clients), one server at
 * a time; each child's open-file limit is raised with `ulimit -n` before it starts. Every child is
 * killed before this returns, on error too. Nothing here asserts a time.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLines, spawnNode, stop } from './lib/children.ts';
import type { Row } from './lib/harness.ts';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 10_000);
const CHANGES = Number(process.env.BENCH_FANOUT_CHANGES ?? 20);
const WARM_UP = 2;

interface Ready { live: number; opened: number; failed: number; connectMs: number }
interface Result {
  live: number; deliveries: number; missed: number; p50: number; p99: number; max: number;
  lastArrivalP50: number; lastArrivalMax: number; postAnsweredP50: number;
}
interface Measured { ready: Ready; result: Result; rssIdleMiB: number; rssHeldMiB: number; fileLimit: string }

async function rssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]);
  return kb / 1024;
}

async function openFileLimit(pid: number | undefined): Promise<string> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8').catch(() => '');
  return /^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 'unknown';
}

async function measure(name: string, serverArgs: string[], awaitSync: boolean, live: Set<ChildProcess>): Promise<Measured> {
  const server = spawnNode(serverArgs, live, true);
  const listening = await jsonLines(server)('listening', 30_000);
  const port = Number(listening.port);
  const rssIdleMiB = await rssMiB(server.pid);
  const fileLimit = await openFileLimit(server.pid);
  const clients = spawnNode([
    'bench/lib/ws-clients.ts', `ws://127.0.0.1:${port}/api/sync`, String(CLIENTS), awaitSync ? '1' : '0',
    `http://127.0.0.1:${port}/api/changes`, String(CHANGES), String(WARM_UP),
  ], live);
  try {
    const next = jsonLines(clients);
    const ready = (await next('ready', 120_000)) as unknown as Ready;
    const rssHeldMiB = await rssMiB(server.pid);
    process.stderr.write(
      `server (${name}): ${ready.live} of ${CLIENTS} clients live in ${Math.round(ready.connectMs)} ms ` +
        `(${ready.failed} failed), server RSS ${rssIdleMiB.toFixed(0)} -> ${rssHeldMiB.toFixed(0)} MiB, ` +
        `open files limit ${fileLimit} (clients ${await openFileLimit(clients.pid)})\n`,
    );
    clients.stdin!.write('go\n');
    const result = (await next('result', 120_000)) as unknown as Result;
    process.stderr.write(
      `server (${name}): ${result.deliveries} deliveries, ${result.missed} missed, POST answered p50 ` +
        `${result.postAnsweredP50.toFixed(1)} ms, last client p50 ${result.lastArrivalP50.toFixed(1)} ms, ` +
        `max ${result.max.toFixed(1)} ms\n`,
    );
    return { ready, result, rssIdleMiB, rssHeldMiB, fileLimit };
  } finally {
    await stop(clients);
    await stop(server);
  }
}

/** KiB the server holds per live client: what holding them added to its RSS, divided by their number. */
function perClientKiB({ ready, rssHeldMiB, rssIdleMiB }: Measured): number {
  return ready.live > 0 ? ((rssHeldMiB - rssIdleMiB) * 1024) / ready.live : 0;
}

export async function run(): Promise<Row[]> {
  const live = new Set<ChildProcess>();
  // A last resort should this process exit with children still running.
  const killAll = () => {
    for (const child of live) child.kill('SIGKILL');
  };
  process.once('exit', killAll);
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-bench-server-'));
  try {
    const ours = await measure('reference', [
      'server/main.ts', '--port', '0', '--host', '127.0.0.1', '--data-dir', dataDir, '--exit-on-stdin-end',
      // The other two servers send no pings either.
      '--heartbeat-ms', '0',
    ], true, live);
    const baseline = await measure('baseline', ['bench/lib/ws-clients-baseline-server.ts'], false, live);
    const floor = await measure('floor', ['bench/lib/ws-clients-floor-server.ts'], false, live);
    const n = CLIENTS.toLocaleString('en-US');
    const baselineName = 'minimal ws broadcast server (no store, no protocol), same clients';
    const floorName = 'floor: one write of a prebuilt frame per socket, no WebSocket library, same clients';
    const fanout = `one POST /api/changes to ${n} clients`;
    return [
      { what: `WebSocket clients held live of ${n} dialled (open after the changes)`, ours: ours.result.live, baseline: baseline.result.live, unit: '', better: 'higher', baselineName },
      { what: `server RSS holding ${n} clients`, ours: ours.rssHeldMiB, baseline: baseline.rssHeldMiB, unit: 'MiB', better: 'lower', baselineName },
      { what: `server RSS per live client (held minus idle, over ${n})`, ours: perClientKiB(ours), baseline: perClientKiB(baseline), unit: 'KiB', better: 'lower', baselineName },
      { what: `${fanout}: delivery p50 (${CHANGES} changes)`, ours: ours.result.p50, baseline: baseline.result.p50, unit: 'ms', better: 'lower', baselineName },
      { what: `${fanout}: delivery p99 (${CHANGES} changes)`, ours: ours.result.p99, baseline: baseline.result.p99, unit: 'ms', better: 'lower', baselineName },
      { what: `${fanout}: until the last client had it, worst of ${CHANGES}`, ours: ours.result.lastArrivalMax, baseline: baseline.result.lastArrivalMax, unit: 'ms', better: 'lower', baselineName },
      { what: `${fanout}: delivery p50`, ours: ours.result.p50, baseline: floor.result.p50, unit: 'ms', better: 'lower', baselineName: floorName },
      { what: `${fanout}: delivery p99`, ours: ours.result.p99, baseline: floor.result.p99, unit: 'ms', better: 'lower', baselineName: floorName },
    ];
  } finally {
    await Promise.all([...live].map(stop));
    process.off('exit', killAll);
    await rm(dataDir, { recursive: true, force: true });
  }
}
