/**
 * The control channel between a test page and `mock-sync-worker.ts`. Every control message has a
 * `mock` key, so it never reaches the sync engine. Kept free of side effects: the page imports it.
 */

/** Where the mock server listens inside the worker. */
export const MOCK_SERVER_URL = 'ws://sync.mock/api/sync';

/** Page to worker. Each command is answered with one `reply` carrying the same `id`. */
export type MockCommand =
  /** Sends each frame, in one go, to every open socket: a string as raw text, anything else as JSON. */
  | { mock: 'send'; id: number; frames: unknown[] }
  /** The server closes every open socket with this code and reason. */
  | { mock: 'close'; id: number; code: number; reason: string }
  /** While on, the server sends nothing by itself (no `pong`). */
  | { mock: 'silence'; id: number; on: boolean }
  /** While on, the server refuses new connections (the socket fails before `open`). */
  | { mock: 'refuse'; id: number; on: boolean }
  /** The engine's jitter source returns `value` (`null`: Math.random). */
  | { mock: 'random'; id: number; value: number | null }
  /**
   * The clock of the engine's reconnection schedule reads `at` ms until set again (`null`: the real
   * clock). Its timers still run in real time, for as long as the schedule says.
   */
  | { mock: 'clock'; id: number; at: number | null }
  /** While set, a commit holding a change to the entity with this id fails in IndexedDB (ConstraintError) and aborts. */
  | { mock: 'fail_writes'; id: number; entityId: string | null }
  /** While on, every fold of the stored commits into `entities` fails in IndexedDB (a write refused). */
  | { mock: 'fail_folds'; id: number; on: boolean }
  /** The worker's thread does nothing else for `ms` (a stall: a busy or throttled worker). */
  | { mock: 'stall'; id: number; ms: number }
  /** While set, a frame longer than `length` characters makes the server close that socket with 1009. */
  | { mock: 'max_payload'; id: number; length: number | null }
  /**
   * Every open client socket reports this `bufferedAmount` (frames still waiting to leave, as on a
   * slow network); 0 again when set to 0. mock-socket itself never reports any.
   */
  | { mock: 'buffered'; id: number; amount: number };

/** Worker to page: command replies and what the mock server saw. */
export type MockReport =
  | { mock: 'reply'; id: number; ok: boolean; error?: string }
  /**
   * The engine created a socket to `url`. Reported from the socket's constructor, so it comes
   * before anything the worker posts after that (a request's answer included); `connection` comes
   * only once mock-socket opens it, a few milliseconds later.
   */
  | { mock: 'dial'; url: string }
  /** A socket connected; `conn` counts from 1 in this worker. */
  | { mock: 'connection'; conn: number; url: string }
  /** A frame the server received: parsed JSON, or the raw text when it is not JSON. */
  | { mock: 'frame'; conn: number; frame: unknown }
  /** A frame over the `max_payload` limit: the server closed the socket instead of reading it. */
  | { mock: 'oversized'; conn: number; length: number }
  | { mock: 'closed'; conn: number };

export type MockCommandName = MockCommand['mock'];

export function isMockMessage(value: unknown): value is { mock: string } {
  return typeof value === 'object' && value !== null && typeof (value as { mock?: unknown }).mock === 'string';
}
