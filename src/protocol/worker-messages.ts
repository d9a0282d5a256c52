/**
 * Messages between the page and the sync worker. Requests carry a `requestId`; the worker answers
 * every request with exactly one `result`. Everything else the worker posts is an event.
 */
import type { Change, InvalidChange } from './change.ts';
import type { EntityRef } from './effects.ts';
import type { SerializedError } from './errors.ts';
import type { LSN } from './lsn.ts';
import type {
  ConnectionOptions,
  QueuedOperation,
  SyncErrorDetail,
  SyncProgress,
  SyncState,
} from './state.ts';

export interface WorkerConfig extends ConnectionOptions {
  /** Absolute ws: or wss: endpoint, without the clientId/lastLSN parameters. */
  url: string;
  /** The client id to use; empty means the one stored in the database (created once). */
  clientId: string;
  dbName: string;
  /** Sent in every `sync` frame, never logged or reflected. */
  token?: string;
  /**
   * The page applies the changes to a database of its own (`apply` events, answered by
   * `applied`); the worker then stores only the resume point.
   */
  applyOnPage?: boolean;
}

/** Changes to apply together, and the resume point they bring the store to. */
export interface ChangeBatch {
  changes: Change[];
  lsn?: LSN;
}

// ---- page to worker ---------------------------------------------------------------------------

interface Request {
  requestId: number;
}

export type PageToWorker =
  /** Opens the database and loads the stored client id, LSN and outbox. Answers the state. */
  | (Request & { type: 'init'; config: WorkerConfig })
  | (Request & { type: 'connect' })
  /** Connects now, skipping any backoff delay under way and the offline check. */
  | (Request & { type: 'force_connect' })
  | (Request & { type: 'disconnect'; graceful: boolean })
  /** Sends `payload` as a raw frame; answers once it is written to the socket. */
  | (Request & { type: 'send_message'; payload: Record<string, unknown> })
  /** Sends a fresh `sync` frame. */
  | (Request & { type: 'sync' })
  | (Request & { type: 'get_status' })
  /** An operation the page has already stored in the outbox; the worker sends it. */
  | (Request & { type: 'operation'; operation: QueuedOperation })
  /** Removes every unacknowledged operation from the outbox. Answers the removed ids. */
  | (Request & { type: 'clear_operations' })
  /** A new token for every later `sync` (an app renews its access token); none without `token`. */
  | (Request & { type: 'token'; token?: string })
  /** The page's view of the network (`online`/`offline` events). */
  | (Request & { type: 'network'; online: boolean })
  /** This tab's page became visible or hidden (`visibilitychange`); a worker starts as visible. */
  | (Request & { type: 'visibility'; visible: boolean })
  /**
   * A page of this client is in use (this tab's or another's): it became visible or got the
   * focus. A reconnection under way may come sooner (docs/protocol.md "Reconnection").
   */
  | (Request & { type: 'wake'; reason: WakeReason })
  /**
   * The answer to an `apply` event: the first `count` batches were committed to the page's
   * database; `error` says why the next one was not.
   */
  | (Request & { type: 'applied'; applyId: string; count: number; error?: string });

export type PageToWorkerType = PageToWorker['type'];

export const WAKE_REASONS = ['visible', 'focus'] as const;
export type WakeReason = (typeof WAKE_REASONS)[number];

// ---- worker to page ---------------------------------------------------------------------------

export type { SerializedError };

export type WorkerResult =
  | { type: 'result'; requestId: number; ok: true; value?: unknown }
  | { type: 'result'; requestId: number; ok: false; error: SerializedError };

export type WorkerEvent =
  | { type: 'connected'; clientId: string; lastLSN: LSN }
  | { type: 'disconnected'; code: number; reason: string; willReconnect: boolean }
  | { type: 'reconnecting'; attempt: number; delay: number }
  /**
   * A new state snapshot. Changes within one task are coalesced into one post, and a pending
   * snapshot is always posted before any other message, so an event never meets an older state.
   */
  | { type: 'status'; state: SyncState }
  /** A server frame of a type the protocol does not define. */
  | { type: 'message'; message: Record<string, unknown> }
  | ({ type: 'error' } & SyncErrorDetail & { invalid?: InvalidChange[] })
  /**
   * The server acknowledged the operation. With `settled`, its record is gone and so is its place
   * in the pending layer; without, it stays in the layer until a commit covers `lsn` (`changes`
   * names it in `settled`).
   */
  | { type: 'operation_complete'; id: string; lsn?: LSN; settled?: true }
  /** The operation was refused for good and removed; `entities` are those its effects touched. */
  | { type: 'operation_error'; id: string; message: string; entities: EntityRef[] }
  /** The server's log does not continue from the resume point: the store was emptied. */
  | { type: 'sync_reset'; reason?: string }
  /**
   * The database was closed under the worker (deleted, upgraded, or closed by the browser) and is
   * open again: what the page holds of it may be gone.
   */
  | { type: 'store_reopened' }
  | { type: 'sync_started'; lsn?: LSN; total?: number }
  | ({ type: 'sync_progress' } & SyncProgress)
  | { type: 'sync_completed'; lsn: LSN }
  /**
   * Batches for the page's own database (`applyOnPage`), one transaction each, in order. The id
   * is unique across workers, so a late answer meant for a worker that died matches nothing.
   */
  | { type: 'apply'; applyId: string; batches: ChangeBatch[] }
  /**
   * Changes that were applied to the store, in order, in one commit; `settled` are acknowledged
   * operations whose records that commit deleted, as the stored state now covers them.
   */
  | { type: 'changes'; changes: Change[]; lsn?: LSN; settled?: string[] };

export type WorkerToPage = WorkerResult | WorkerEvent;

/** What a worker posts besides its state snapshots (`status`). */
export type WorkerPost = Exclude<WorkerToPage, { type: 'status' }>;
