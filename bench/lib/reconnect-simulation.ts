/**
 * Many clients reconnecting to a server that was down, in virtual time, each drawing its delays
 * from the client's own schedule (src/worker/retry-schedule.ts). Every client lost the server at
 * the same instant, 0, the worst case for a synchronised wave; the server is back at `outageMs`,
 * and from then on a dial connects. A dial takes no time here, so what the server sees is the
 * schedule's doing alone.
 */
import { DEFAULT_CONNECTION_OPTIONS } from '../../src/protocol/state.ts';
import { retryDelay } from '../../src/worker/retry-schedule.ts';

export interface SimulationOptions {
  clients: number;
  outageMs: number;
  /** Every client's page is visible (the schedule of #15), or none is (the schedule before it). */
  visible: boolean;
  /**
   * Adds the delay Chromium puts before each new WebSocket of a renderer, for a page whose last
   * successful handshake is older than its 2 to 4 minute window: uniform in [1, 5] s times
   * 2^min(failed handshakes, 16) / 65536 (services/network/websocket_throttler.cc).
   */
  browserThrottle?: boolean;
}

export interface SimulationResult {
  /** When each client connected, in ms after the server came back, sorted. */
  connectedAfter: number[];
  /** Dials that failed because the server was down, per client. */
  failedDials: number[];
}

export function simulateReconnection({ clients, outageMs, visible, browserThrottle = false }: SimulationOptions): SimulationResult {
  const next = Math.random;
  const connectedAfter: number[] = [];
  const failedDials: number[] = [];
  for (let client = 0; client < clients; client++) {
    let now = 0;
    let failed = 0;
    for (let attempt = 0; ; attempt++) {
      now += retryDelay({ attempt, outageAge: now, visible }, DEFAULT_CONNECTION_OPTIONS, next);
      if (browserThrottle) now += ((1_000 + 4_000 * next()) * 2 ** Math.min(failed, 16)) / 65_536;
      if (now >= outageMs) break;
      failed += 1;
    }
    connectedAfter.push(now - outageMs);
    failedDials.push(failed);
  }
  connectedAfter.sort((a, b) => a - b);
  return { connectedAfter, failedDials };
}

/** How many of the sorted times fall in each `bucketMs` from 0 until the last. */
export function histogram(sortedTimes: readonly number[], bucketMs: number): number[] {
  const last = sortedTimes.at(-1) ?? 0;
  const counts = new Array<number>(Math.floor(last / bucketMs) + 1).fill(0);
  for (const time of sortedTimes) counts[Math.floor(time / bucketMs)]! += 1;
  return counts;
}
