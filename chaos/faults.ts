/**
 * The faults of the chaos run: a schedule drawn from the seed before anything starts (so a seed
 * names the same faults, in the same order on each lane, on every run; only their timing against
 * the clients' writes differs), and how each is injected and healed.
 */
import { Prng } from '../test/helpers/prng.ts';

export const FAULT_KINDS = [
  'server-kill',
  'socket-drop',
  'partition',
  'worker-crash',
  'idb-abort',
  'leader-close',
  'postgres-restart',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export const FAULT_NAMES: Record<FaultKind, string> = {
  'server-kill': 'server SIGKILL and restart',
  'socket-drop': 'sockets dropped',
  partition: 'network partition (proxy stalls)',
  'worker-crash': 'sync worker crashed',
  'idb-abort': 'IndexedDB transactions aborted',
  'leader-close': 'leader tab closed',
  'postgres-restart': 'PostgreSQL restarted',
};

export interface Fault {
  index: number;
  kind: FaultKind;
  /** A server's name (server-kill, socket-drop, partition), a client's name, or `postgres`. */
  target: string;
  /** How long the fault lasts before it is healed. */
  holdMs: number;
  /** Transactions to abort (idb-abort). */
  count: number;
  /** Pause after healing, before the lane's next fault. */
  gapMs: number;
}

export interface Topology {
  servers: readonly string[];
  clients: readonly string[];
  postgres: boolean;
  kinds: readonly FaultKind[];
}

const WEIGHTS: Record<FaultKind, number> = {
  'server-kill': 3,
  'socket-drop': 3,
  partition: 3,
  'worker-crash': 2,
  'idb-abort': 3,
  'leader-close': 2,
  'postgres-restart': 1,
};

export function schedule(seed: number, count: number, topology: Topology): Fault[] {
  const rng = new Prng(seed);
  const kinds = topology.kinds.filter((kind) => kind !== 'postgres-restart' || topology.postgres);
  if (kinds.length === 0 && count > 0) throw new Error('no fault kind to draw from (postgres-restart needs PostgreSQL)');
  const faults: Fault[] = [];
  for (let index = 0; index < count; index++) {
    const kind = rng.weighted(kinds.map((k) => [WEIGHTS[k], k] as const));
    const target = kind === 'postgres-restart' ? 'postgres'
      : kind === 'server-kill' || kind === 'socket-drop' || kind === 'partition' ? rng.pick(topology.servers)
      : rng.pick(topology.clients);
    // Partitions sometimes outlast two heartbeat intervals (the client gives the socket up),
    // sometimes not (the stalled frames arrive late on the same socket).
    const holdMs = kind === 'partition' ? rng.int(200, 4_000)
      : kind === 'socket-drop' || kind === 'worker-crash' ? 0
      : rng.int(50, 1_500);
    faults.push({ index, kind, target, holdMs, count: rng.int(1, 6), gapMs: rng.int(0, 400) });
  }
  return faults;
}

/** Per fault kind: how many were injected, and how many the system came back from. */
export class FaultTally {
  readonly injected = new Map<FaultKind, number>();
  readonly survived = new Map<FaultKind, number>();

  inject(kind: FaultKind): void {
    this.injected.set(kind, (this.injected.get(kind) ?? 0) + 1);
  }

  /** Per kind, from healing to every affected client connected again. */
  readonly recoveryMs = new Map<FaultKind, number[]>();

  survive(kind: FaultKind, recoveryMs: number): void {
    this.survived.set(kind, (this.survived.get(kind) ?? 0) + 1);
    this.recoveryMs.set(kind, [...this.recoveryMs.get(kind) ?? [], recoveryMs]);
  }
}
