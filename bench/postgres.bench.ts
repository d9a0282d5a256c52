/**
 * Three reference servers on one PostgreSQL (a throwaway cluster with fsync on, on this machine)
 * beside the embedded log through one server, same clients, same run. Writers pipeline operations
 * (64 in flight each, like the client's outbox) through every instance; an observer on another
 * instance notes when each change arrives. Everything runs on 127.0.0.1; servers are child
 * processes, clients live here. Nothing here asserts a time. With BENCH_PG_BEFORE naming a
 * checkout of an earlier version (its node_modules in place), its three servers are measured
 * too, on a database of their own in the same cluster, and compared with this version's.
 */
import { WebSocket } from 'ws';
import { parseServerFrame } from '../src/protocol/wire.ts';
import { startPostgresCluster } from '../server/test/postgres-cluster.ts';
import { percentile, removeServer, startServer, type BenchServer, type Row } from './lib/harness.ts';

const OPERATIONS = Number(process.env.BENCH_PG_OPERATIONS ?? 6_000);
const WINDOW = 64;
const PACED = Number(process.env.BENCH_PG_PACED ?? 300);
const BEFORE = process.env.BENCH_PG_BEFORE;

interface Measured {
  opsPerSecond: number;
  /** Ms from an acknowledgement (at the writer) to the change's arrival at the observer. */
  loadedP99: number;
  pacedP99: number;
  /** Ms from sending an operation to its change's arrival at the observer, one at a time. */
  endToEndP50: number;
  endToEndP99: number;
}

/** A socket that has synced; `onFrame` sees every parsed frame after that. */
async function openClient(server: BenchServer, onFrame: (frame: ReturnType<typeof parseFrame>) => void): Promise<WebSocket> {
  const socket = new WebSocket(server.wsUrl);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  await new Promise<void>((resolve) => {
    socket.on('message', (data) => {
      const frame = parseFrame(data.toString());
      if (frame?.type === 'sync_complete') resolve();
      onFrame(frame);
    });
    socket.send(JSON.stringify({ type: 'sync', clientId: 'bench', lastLSN: '0/0' }));
  });
  return socket;
}

function parseFrame(text: string) {
  const parsed = parseServerFrame(text);
  return parsed.ok ? parsed.message : undefined;
}

function operation(id: string) {
  return JSON.stringify({ type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'bench', entityId: id, data: { id, at: Date.now() } } } });
}

/**
 * `writeTo[i]` gets writer i; its changes are watched on `observeOn[i]`. Returns throughput under
 * a pipelined load, and acknowledgement-to-arrival times under that load and one at a time.
 */
async function measure(name: string, writeTo: BenchServer[], observeOn: BenchServer[]): Promise<Measured> {
  const acked = new Map<string, number>();
  const arrived = new Map<string, number>();
  const ackWaiters = new Map<string, () => void>();
  const sockets: WebSocket[] = [];
  try {
    for (const server of new Set(observeOn)) {
      sockets.push(await openClient(server, (frame) => {
        if (frame?.type !== 'changes') return;
        const now = performance.now();
        for (const change of frame.changes) if (!arrived.has(change.entityId)) arrived.set(change.entityId, now);
      }));
    }
    const writers: WebSocket[] = [];
    for (const server of writeTo) {
      writers.push(await openClient(server, (frame) => {
        if (frame?.type !== 'operation_complete') return;
        acked.set(frame.id, performance.now());
        ackWaiters.get(frame.id)?.();
      }));
    }
    sockets.push(...writers);

    // Pipelined: each writer keeps WINDOW operations in flight until its share is acknowledged.
    const share = Math.ceil(OPERATIONS / writers.length);
    const started = performance.now();
    await Promise.all(writers.map((socket, w) => new Promise<void>((resolve) => {
      let sent = 0;
      let done = 0;
      const sendOne = () => {
        const id = `${name}-load-${w}-${sent}`;
        sent += 1;
        ackWaiters.set(id, () => {
          ackWaiters.delete(id);
          done += 1;
          if (sent < share) sendOne();
          else if (done === share) resolve();
        });
        socket.send(operation(id));
      };
      for (let i = 0; i < Math.min(WINDOW, share); i += 1) sendOne();
    })));
    const elapsed = performance.now() - started;
    const loadIds = [...acked.keys()].filter((id) => id.includes('-load-'));
    await waitFor(() => loadIds.every((id) => arrived.has(id)), 30_000);
    const loaded = loadIds.map((id) => arrived.get(id)! - acked.get(id)!);

    // One at a time through the first writer.
    const pacedIds: string[] = [];
    const sentAt = new Map<string, number>();
    for (let n = 0; n < PACED; n += 1) {
      const id = `${name}-paced-${n}`;
      pacedIds.push(id);
      sentAt.set(id, performance.now());
      await new Promise<void>((resolve) => {
        ackWaiters.set(id, resolve);
        writers[0]!.send(operation(id));
      });
      await waitFor(() => arrived.has(id), 10_000);
    }
    const paced = pacedIds.map((id) => arrived.get(id)! - acked.get(id)!);
    const endToEnd = pacedIds.map((id) => arrived.get(id)! - sentAt.get(id)!);
    const result = {
      opsPerSecond: (share * writers.length) / (elapsed / 1000),
      loadedP99: percentile(loaded, 99),
      pacedP99: percentile(paced, 99),
      endToEndP50: percentile(endToEnd, 50),
      endToEndP99: percentile(endToEnd, 99),
    };
    process.stderr.write(`postgres (${name}): ${JSON.stringify(result)}\n`);
    return result;
  } finally {
    for (const socket of sockets) socket.terminate();
  }
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('a change did not arrive in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

export async function run(): Promise<Row[]> {
  const servers: BenchServer[] = [];
  const cluster = await startPostgresCluster({ durable: true });
  try {
    const throughThree = async (name: string, cwd?: string): Promise<Measured> => {
      const url = await cluster.createDatabase(name);
      for (let i = 0; i < 3; i += 1) servers.push(await startServer(['--store', url], cwd));
      const [a, b, c] = servers as [BenchServer, BenchServer, BenchServer];
      const measured = await measure(name, [a, b, c], [b, c, a]);
      for (const server of servers.splice(0)) await removeServer(server);
      return measured;
    };
    const before = BEFORE === undefined ? undefined : await throughThree('before', BEFORE);
    const ours = await throughThree('postgres');

    const embedded = await startServer();
    servers.push(embedded);
    const baseline = await measure('embedded', [embedded, embedded, embedded], [embedded, embedded, embedded]);

    const baselineName = 'embedded log, one server (observer on the same server)';
    const load = `${OPERATIONS.toLocaleString('en-US')} operations, ${WINDOW} in flight per writer`;
    const beforeName = 'the same three servers, earlier version (BENCH_PG_BEFORE), same cluster';
    const comparedWithBefore: Row[] = before === undefined ? [] : [
      { what: 'operations through 3 servers on one PostgreSQL (as above)', ours: ours.opsPerSecond, baseline: before.opsPerSecond, unit: 'ops/s', better: 'higher', baselineName: beforeName },
      { what: 'operation sent to its change reaching a client of another server, p50 (as above)', ours: ours.endToEndP50, baseline: before.endToEndP50, unit: 'ms', better: 'lower', baselineName: beforeName },
      { what: 'the same, p99', ours: ours.endToEndP99, baseline: before.endToEndP99, unit: 'ms', better: 'lower', baselineName: beforeName },
    ];
    return [
      { what: `operations through 3 servers on one PostgreSQL (${load}, a writer on each)`, ours: ours.opsPerSecond, baseline: baseline.opsPerSecond, unit: 'ops/s', better: 'higher', baselineName },
      { what: 'the same: acknowledgement to the change reaching a client of another server, p99', ours: ours.loadedP99, baseline: baseline.loadedP99, unit: 'ms', better: 'lower', baselineName },
      { what: `acknowledgement to the change reaching a client of another server, p99 (${PACED} operations one at a time)`, ours: ours.pacedP99, baseline: baseline.pacedP99, unit: 'ms', better: 'lower', baselineName },
      { what: 'the same: operation sent to its change reaching a client of another server, p50', ours: ours.endToEndP50, baseline: baseline.endToEndP50, unit: 'ms', better: 'lower', baselineName },
      { what: 'the same: operation sent to its change reaching a client of another server, p99', ours: ours.endToEndP99, baseline: baseline.endToEndP99, unit: 'ms', better: 'lower', baselineName },
      ...comparedWithBefore,
    ];
  } finally {
    for (const server of servers) await removeServer(server);
    await cluster.destroy();
  }
}
