/**
 * The chaos run: browser clients on reference servers of both stores, while a seeded schedule of
 * faults is injected and healed and every tab queues operations; then, with everything healed
 * and quiet, the checks of verify.ts. It returns what it saw; main.ts prints it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'puppeteer-core';
import { startPostgresCluster, type PostgresCluster } from '../server/test/postgres-cluster.ts';
import { ChaosClient, Ledger, type ClientSpec, type WritingPace } from './clients.ts';
import { FaultTally, schedule, type Fault, type FaultKind } from './faults.ts';
import { readLog } from './log-reader.ts';
import type { PageServer } from './page-server.ts';
import { ServerProcess } from './server-process.ts';
import { TcpProxy } from './tcp-proxy.ts';
import { checkApplications, compareEntities } from './verify.ts';

export interface ChaosOptions {
  faults: number;
  seed: number;
  /** Faults under way at once, at most. */
  lanes: number;
  postgres: 'auto' | 'on' | 'off';
  kinds: readonly FaultKind[];
  pace: WritingPace;
  /** Logs every fault as it is injected. */
  verbose: boolean;
  log: (line: string) => void;
}

export interface ChaosResult {
  tally: FaultTally;
  operations: Map<string, { zero: number; once: number; more: number }>;
  clientErrors: Map<string, number>;
  postgres: string;
  violations: string[];
  seconds: number;
}

const RECOVERY_TIMEOUT_MS = 60_000;
const QUIET_TIMEOUT_MS = 180_000;
const SETTLE_TIMEOUT_MS = 30_000;
const POLL_MS = 250;
const HARVEST_MS = 1_000;
const HEARTBEAT_MS = '1000';

interface Endpoint {
  name: string;
  store: string;
  server: ServerProcess;
  proxy: TcpProxy;
}

/** Serialises async work per name: faults that touch the same server, proxy or client. */
class Locks {
  readonly #tails = new Map<string, Promise<void>>();

  async with<T>(names: readonly string[], work: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(names)].sort();
    const releases: (() => void)[] = [];
    for (const name of sorted) {
      const before = this.#tails.get(name) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((resolve) => { release = resolve; });
      this.#tails.set(name, before.then(() => mine));
      await before;
      releases.push(release);
    }
    try {
      return await work();
    } finally {
      for (const release of releases) release();
    }
  }
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS)); // a poll interval: the condition is checked, not assumed
  }
}

export async function chaosRun(options: ChaosOptions, browser: Browser, pages: PageServer): Promise<ChaosResult> {
  const started = Date.now();
  const { log } = options;
  const violations: string[] = [];
  const endpoints: Endpoint[] = [];
  const clients: ChaosClient[] = [];
  const ledger = new Ledger();
  const locks = new Locks();
  const tally = new FaultTally();
  let cluster: PostgresCluster | undefined;
  let postgres = 'not used (--postgres off)';
  const dataDir = await mkdtemp(join(tmpdir(), 'sync-chaos-'));
  let harvesting: ReturnType<typeof setInterval> | undefined;
  let stopping = false;

  const addEndpoint = async (name: string, store: string, storeArgs: string[]): Promise<void> => {
    // A server that exits by itself is a violation (its `crashes`); it is started again, as a
    // supervisor would, so that the rest of the run still tells something.
    // Not under the server's lock: a fault holding it (a PostgreSQL restart) waits for the clients
    // this server serves.
    const restart = (): void => {
      server.start().then(
        () => endpoint(name).proxy.retarget(server.port),
        (error: unknown) => violations.push(`${name} could not be started again after it exited: ${String(error)}`),
      );
    };
    const server = new ServerProcess({
      name, storeArgs, extraArgs: ['--heartbeat-ms', HEARTBEAT_MS],
      onCrash: (text) => {
        log(`chaos: ${text.split(' | ')[0]}; starting it again`);
        if (!stopping) restart();
      },
    });
    await server.start();
    endpoints.push({ name, store, server, proxy: await TcpProxy.start(server.port) });
  };
  const endpoint = (name: string): Endpoint => endpoints.find((e) => e.name === name)!;
  const clientsOf = (fault: Fault): ChaosClient[] => {
    if (fault.kind === 'postgres-restart') return clients.filter((c) => c.spec.store === 'postgres');
    const named = clients.find((c) => c.spec.name === fault.target);
    if (named) return [named];
    const proxyPort = endpoint(fault.target).proxy.port;
    return clients.filter((c) => c.spec.wsUrl.includes(`:${proxyPort}/`));
  };

  try {
    await addEndpoint('log', 'log', ['--data-dir', join(dataDir, 'log')]);
    if (options.postgres !== 'off') {
      try {
        cluster = await startPostgresCluster();
        const url = await cluster.createDatabase('chaos');
        await addEndpoint('pg1', 'postgres', ['--store', url]);
        await addEndpoint('pg2', 'postgres', ['--store', url]);
        postgres = 'two servers on one throwaway cluster';
      } catch (error) {
        if (options.postgres === 'on') throw error;
        postgres = `skipped: ${error instanceof Error ? error.message : String(error)}`;
        await cluster?.destroy();
        cluster = undefined;
      }
    }
    const wsUrl = (name: string): string => `ws://127.0.0.1:${endpoint(name).proxy.port}/api/sync`;
    const specs: ClientSpec[] = [
      { name: 'alpha', store: 'log', tabs: 3, wsUrl: wsUrl('log') },
      { name: 'beta', store: 'log', tabs: 1, wsUrl: wsUrl('log') },
    ];
    if (cluster) {
      specs.push({ name: 'gamma', store: 'postgres', tabs: 2, wsUrl: wsUrl('pg1') });
      specs.push({ name: 'delta', store: 'postgres', tabs: 1, wsUrl: wsUrl('pg2') });
    }
    for (const spec of specs) {
      const client = new ChaosClient(spec, options.seed, browser, pages, ledger, options.pace);
      clients.push(client);
      await locks.with([`client:${spec.name}`], () => client.open());
    }
    log(`chaos: seed ${options.seed}, ${options.faults} faults on ${options.lanes} lanes; servers ${endpoints.map((e) => e.name).join(', ')}; ` +
      `clients ${clients.map((c) => `${c.spec.name} (${c.spec.tabs} tab${c.spec.tabs > 1 ? 's' : ''}, ${c.spec.store})`).join(', ')}; PostgreSQL ${postgres}`);

    harvesting = setInterval(() => {
      for (const client of clients) {
        void locks.with([`client:${client.spec.name}`], () => client.harvestAll()).catch((error: unknown) => {
          violations.push(`harvesting ${client.spec.name}: ${String(error)}`);
        });
      }
    }, HARVEST_MS);

    const resourcesOf = (fault: Fault): string[] => {
      switch (fault.kind) {
        case 'server-kill': return [`server:${fault.target}`, ...(endpoint(fault.target).store === 'postgres' ? ['postgres'] : [])];
        case 'socket-drop':
        case 'partition': return [`proxy:${fault.target}`];
        case 'postgres-restart': return ['postgres', ...endpoints.filter((e) => e.store === 'postgres').map((e) => `server:${e.name}`)];
        default: return [`client:${fault.target}`];
      }
    };

    const recovered = async (affected: readonly ChaosClient[]): Promise<boolean> => {
      let said = Date.now();
      return waitUntil(async () => {
        for (const client of affected) {
          const statuses = await client.statuses();
          if (!statuses.some((s) => s.role === 'leader') || statuses.some((s) => s.status !== 'connected')) {
            if (options.verbose && Date.now() - said > 10_000) {
              said = Date.now();
              log(`chaos: still waiting for ${client.spec.name}: ${JSON.stringify(statuses)}`);
            }
            return false;
          }
        }
        return true;
      }, RECOVERY_TIMEOUT_MS);
    };

    const hold = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms)); // the fault's scheduled length

    const history: { fault: Fault; from: number; to: number }[] = [];
    const context = (at: number): string => {
      const near = history.filter(({ from, to }) => from - 2_000 <= at && at <= to + 5_000);
      const when = (t: number): string => `+${((t - started) / 1000).toFixed(1)} s`;
      return `queued at ${when(at)}, faults near then: ${near.map(({ fault, from, to }) => `#${fault.index} ${fault.kind} on ${fault.target} ${when(from)} to ${when(to)}`).join(', ') || 'none'}`;
    };
    const inject = async (fault: Fault): Promise<void> => {
      const entry = { fault, from: Date.now(), to: Infinity };
      history.push(entry);
      try {
        await injectNow(fault);
      } finally {
        entry.to = Date.now();
      }
    };
    const injectNow = async (fault: Fault): Promise<void> => {
      tally.inject(fault.kind);
      switch (fault.kind) {
        case 'server-kill': {
          const { server, proxy } = endpoint(fault.target);
          await server.stop('SIGKILL');
          await hold(fault.holdMs);
          await server.start();
          proxy.retarget(server.port);
          break;
        }
        case 'socket-drop':
          endpoint(fault.target).proxy.dropAll();
          break;
        case 'partition': {
          const { proxy } = endpoint(fault.target);
          proxy.partition();
          await hold(fault.holdMs);
          proxy.heal();
          break;
        }
        case 'worker-crash':
          await clientsOf(fault)[0]!.crashWorker();
          break;
        case 'idb-abort': {
          const client = clientsOf(fault)[0]!;
          await client.abortTransactions(fault.count);
          await hold(fault.holdMs);
          await client.disarm();
          break;
        }
        case 'leader-close': {
          const client = clientsOf(fault)[0]!;
          const leader = await client.leader() ?? client.live[0]!;
          await client.closeTab(leader);
          await hold(fault.holdMs);
          await client.openTab();
          break;
        }
        case 'postgres-restart':
          await cluster!.stop();
          await hold(fault.holdMs);
          await cluster!.start();
          break;
      }
    };

    const faults = schedule(options.seed, options.faults, {
      servers: endpoints.map((e) => e.name),
      clients: clients.map((c) => c.spec.name),
      postgres: cluster !== undefined,
      kinds: options.kinds,
    });
    let done = 0;
    const lanes = Array.from({ length: options.lanes }, async (_, lane) => {
      for (const fault of faults.filter((f) => f.index % options.lanes === lane)) {
        const affected = clientsOf(fault);
        await locks.with(resourcesOf(fault).concat(affected.map((c) => `client:${c.spec.name}`)), async () => {
          if (options.verbose) log(`chaos: +${((Date.now() - started) / 1000).toFixed(1)} s fault #${fault.index} ${fault.kind} on ${fault.target} for ${fault.holdMs} ms`);
          try {
            await inject(fault);
          } catch (error) {
            violations.push(`fault #${fault.index} (${fault.kind} on ${fault.target}) could not be injected or healed: ${error instanceof Error ? error.message : String(error)} (seed ${options.seed})`);
            return;
          }
          const healed = Date.now();
          if (await recovered(affected)) tally.survive(fault.kind, Date.now() - healed);
          else {
            const states = await Promise.all(affected.map(async (c) => `${c.spec.name} ${JSON.stringify(await c.statuses().catch(String))}`));
            violations.push(`fault #${fault.index} (${fault.kind} on ${fault.target}): not connected ${RECOVERY_TIMEOUT_MS / 1000} s after it healed: ${states.join('; ')} (seed ${options.seed})`);
          }
        });
        done += 1;
        if (done % 50 === 0) log(`chaos: ${done} of ${faults.length} faults, ${ledger.entries.size} operations queued`);
        await hold(fault.gapMs);
      }
    });
    await Promise.all(lanes);

    // Everything is healed: stop writing, and wait until every client is quiet and at its server's head.
    clearInterval(harvesting);
    harvesting = undefined;
    for (const client of clients) await locks.with([`client:${client.spec.name}`], () => client.stopWriting());
    const quiet = await waitUntil(async () => {
      for (const client of clients) {
        const statuses = await client.statuses();
        if (statuses.some((s) => s.status !== 'connected' || s.pending !== 0)) return false;
      }
      for (const store of new Set(endpoints.map((e) => e.store))) {
        const heads = new Set(await Promise.all(endpoints.filter((e) => e.store === store).map((e) => e.server.lsn())));
        if (heads.size !== 1) return false;
        const [head] = heads;
        for (const client of clients.filter((c) => c.spec.store === store)) {
          if ((await client.statuses()).some((s) => s.lastLsn !== head)) return false;
        }
      }
      return true;
    }, QUIET_TIMEOUT_MS);
    // Then every promise settles: the outbox is empty, so each has its answer or never will.
    await waitUntil(async () => {
      for (const client of clients) if ((await client.statuses()).some((s) => s.inFlight !== 0)) return false;
      return true;
    }, SETTLE_TIMEOUT_MS);
    for (const client of clients) await client.harvestAll();
    if (!quiet) {
      for (const client of clients) {
        violations.push(`not quiet ${QUIET_TIMEOUT_MS / 1000} s after the last fault: ${client.spec.name} ${JSON.stringify(await client.statuses())} (seed ${options.seed})`);
      }
    }

    const operations = new Map<string, { zero: number; once: number; more: number }>();
    for (const store of new Set(endpoints.map((e) => e.store))) {
      const storeEndpoints = endpoints.filter((e) => e.store === store && e.server.running);
      if (storeEndpoints.length === 0) {
        violations.push(`no server of the ${store} store is running at the end, so nothing of it could be checked (seed ${options.seed})`);
        continue;
      }
      const changes = await readLog(storeEndpoints[0]!.server.wsUrl, `chaos-reader-${store}`).catch((error: unknown) => {
        violations.push(`the ${store} store's log could not be read: ${String(error)} (seed ${options.seed})`);
        return undefined;
      });
      if (!changes) continue;
      const names = new Set(clients.filter((c) => c.spec.store === store).map((c) => c.spec.name));
      const check = checkApplications(ledger, names, changes, options.seed, context);
      violations.push(...check.violations);
      for (const [fate, row] of check.table) {
        const sum = operations.get(fate) ?? { zero: 0, once: 0, more: 0 };
        operations.set(fate, { zero: sum.zero + row.zero, once: sum.once + row.once, more: sum.more + row.more });
      }
      for (const { name, server } of storeEndpoints) {
        const entities = await server.entities().then((read) => read.entities, (error: unknown) => {
          violations.push(`${name}'s entities could not be read: ${String(error)} (seed ${options.seed})`);
          return undefined;
        });
        if (!entities) continue;
        for (const client of clients.filter((c) => c.spec.store === store)) {
          for (const tab of client.live) {
            violations.push(...compareEntities(`tab ${tab.name} against ${name} (seed ${options.seed})`, await client.entities(tab), entities));
          }
        }
      }
    }
    for (const { server } of endpoints) violations.push(...server.crashes);
    const clientErrors = new Map<string, number>();
    for (const client of clients) {
      for (const [code, count] of client.errors) clientErrors.set(code, (clientErrors.get(code) ?? 0) + count);
      violations.push(...client.pageErrors.map((text) => `an error in the page's own code: ${text}`));
    }
    return { tally, operations, clientErrors, postgres, violations, seconds: (Date.now() - started) / 1000 };
  } finally {
    stopping = true;
    if (harvesting) clearInterval(harvesting);
    for (const client of clients) for (const tab of client.live) await tab.page.close().catch(() => undefined);
    for (const { server, proxy } of endpoints) {
      await proxy.close();
      await server.stop('SIGKILL');
    }
    await cluster?.destroy();
    await rm(dataDir, { recursive: true, force: true });
  }
}
