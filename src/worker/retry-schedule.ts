/**
 * When a connection that was lost dials again (docs/protocol.md "Reconnection"). One time unit,
 * `backoffInitial`, scales the whole schedule; `backoffMax` caps it.
 *
 * - A page nobody looks at draws each delay with full jitter, uniformly below a ceiling that doubles
 *   from `backoffInitial` at every attempt up to `backoffMax`.
 * - A visible page keeps the same doubling but holds the ceiling at `2 × backoffInitial` (1 s by
 *   default) while the outage is young, and past that lets it grow with the outage's age, to a
 *   tenth of it. From its second retry on it draws with equal jitter, uniformly in the upper half
 *   of the ceiling: for the same wait after the server's return that needs fewer dials than full
 *   jitter (Chromium delays a page's new WebSockets more after every handshake that failed).
 * - Every first retry after a drop is drawn with full jitter: the drop is what all the clients of
 *   a server that went away have in common, so their first retries get the widest spread.
 *
 * Pure functions: the worker's connection and the recovery benchmark's simulated clients use them.
 */
import type { ConnectionOptions } from '../protocol/state.ts';

/** Where a lost connection stands when it draws its next delay. */
export interface RetryState {
  /** Attempts so far since the last connection that reached `sync_complete` (0 for the first retry). */
  attempt: number;
  /** Milliseconds since the outage began (see `Connection`). */
  outageAge: number;
  /** A page of this client is visible. */
  visible: boolean;
}

/** A visible page's ceiling while the outage is young, in units of `backoffInitial`. */
export const QUICK_CEILING = 2;
/** Past that, a visible page's ceiling is this share of the outage's age. */
export const AGE_SHARE = 0.1;
/**
 * A page that becomes visible dials at once when the retry under way has waited this long since
 * the last attempt ended, and otherwise as a visible page's schedule would.
 */
export const VISIBLE_WAKE_MS = 1_000;
/** A page that gets the focus dials at once after this long a wait, and otherwise at that point. */
export const FOCUS_WAKE_MS = 5_000;

type Timing = Pick<ConnectionOptions, 'backoffInitial' | 'backoffMax'>;

/** The range the next delay is drawn from: `[ceiling / 2, ceiling)` for a visible page's later retries, else `[0, ceiling)`. */
export function retryCeiling({ attempt, outageAge, visible }: RetryState, { backoffInitial, backoffMax }: Timing): number {
  const doubling = Math.min(backoffMax, backoffInitial * 2 ** attempt);
  if (!visible) return doubling;
  return Math.min(doubling, Math.max(QUICK_CEILING * backoffInitial, AGE_SHARE * outageAge));
}

/** The next delay in milliseconds; `random` returns a number in [0, 1). */
export function retryDelay(state: RetryState, timing: Timing, random: () => number): number {
  const ceiling = retryCeiling(state, timing);
  const r = Math.min(1, Math.max(0, random()));
  return state.visible && state.attempt > 0 ? ceiling / 2 + (r * ceiling) / 2 : r * ceiling;
}
