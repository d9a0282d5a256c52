import type { Effect } from './effects.ts';
import type { LSN } from './lsn.ts';

/** The connection status the element reflects in its `status` attribute. */
export const SyncStatus = {
  disconnected: 'disconnected',
  connecting: 'connecting',
  connected: 'connected',
  reconnecting: 'reconnecting',
  offline: 'offline',
  error: 'error',
} as const;
export type SyncStatus = (typeof SyncStatus)[keyof typeof SyncStatus];

export type SyncRole = 'leader' | 'follower';

/** Progress of a catch-up: changes applied so far, and the total when the server said it. */
export interface SyncProgress {
  applied: number;
  total?: number;
}

/** The codes an `error` event carries. */
export type SyncErrorCode =
  | 'invalid_url'
  | 'protocol'
  | 'invalid_change'
  | 'storage'
  | 'worker'
  | 'server'
  | 'closed'
  | 'operation'
  /** A live query's filter, sort or listener threw. */
  | 'observer';

export interface SyncErrorDetail {
  code: SyncErrorCode;
  message: string;
  cause?: unknown;
}

/** An immutable snapshot of a connection's state: replaced on every change, never mutated. */
export interface SyncState {
  readonly status: SyncStatus;
  readonly clientId: string;
  readonly lastLSN: LSN;
  readonly isConnected: boolean;
  readonly isConnecting: boolean;
  /** True from `sync_start` (or the first catch-up batch) until `sync_complete`. */
  readonly syncing: boolean;
  readonly progress: SyncProgress | null;
  readonly pendingOperations: number;
  readonly reconnectAttempts: number;
  readonly role: SyncRole;
  readonly online: boolean;
  readonly lastError: SyncErrorDetail | null;
}

export const INITIAL_STATE: SyncState = Object.freeze({
  status: SyncStatus.disconnected,
  clientId: '',
  lastLSN: '0/0',
  isConnected: false,
  isConnecting: false,
  syncing: false,
  progress: null,
  pendingOperations: 0,
  reconnectAttempts: 0,
  role: 'leader',
  online: true,
  lastError: null,
});

/** What a page passes to `queueOperation`. */
export interface OperationInput {
  type: string;
  payload?: unknown;
  /** Defaults to `crypto.randomUUID()`. */
  id?: string;
  /** Higher first; default 0. */
  priority?: number;
  /**
   * What the operation does to entities, shown at once in every read until the server's state
   * covers it. `upsert`, `patch` and `delete` operations have their payload's effect and take no
   * other; another type has these, or none.
   */
  effects?: readonly Effect[];
}

/** An operation as it is stored in the outbox. */
export interface QueuedOperation {
  id: string;
  type: string;
  payload: unknown;
  priority: number;
  /** Orders operations of equal priority: first queued, first sent. */
  seq: number;
  queuedAt: number;
  /** The effects a custom type declared (never for `upsert`, `patch`, `delete`). */
  effects?: Effect[];
  /** The key of the outbox record holding it (operations stored together share one); set once stored. */
  group?: number;
}

/** What `queueOperation` resolves with. */
export interface OperationResult {
  id: string;
  lsn?: LSN;
}

/** Tunables of the worker's connection; each has the default of docs/protocol.md. */
export interface ConnectionOptions {
  /** Milliseconds between pings; two silent intervals mean a dead socket. Default 15000. */
  heartbeatInterval: number;
  /** Upper bound of the first reconnection delay in ms. Default 500. */
  backoffInitial: number;
  /** Cap of the reconnection delay in ms. Default 30000. */
  backoffMax: number;
}

export const DEFAULT_CONNECTION_OPTIONS: ConnectionOptions = Object.freeze({
  heartbeatInterval: 15_000,
  backoffInitial: 500,
  backoffMax: 30_000,
});
