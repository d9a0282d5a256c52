import type { ConnectionOptions } from '../protocol/state.ts';
import { DEFAULT_CONNECTION_OPTIONS } from '../protocol/state.ts';
import type { WorkerConfig } from '../protocol/worker-messages.ts';
import type { Database } from './database.ts';
import type { LockManagerLike } from './leader-election.ts';
import type { WorkerEndpoint } from './worker-endpoint.ts';

export interface SyncServiceOptions extends Partial<ConnectionOptions> {
  /** The sync endpoint: relative, http(s) or ws(s). Default `/api/sync`. */
  url?: string;
  /** Default: a random id created once and stored in the database. */
  clientId?: string;
  /** IndexedDB database; default `sync-connection`. */
  dbName?: string;
  /** Sent to the server in every `sync` frame. */
  token?: string;
  /** Largest operation accepted by `queueOperation`, in bytes of JSON. Default 1 MiB. */
  maxOperationBytes?: number;
  /** Base for a relative `url`; default the document's base URI. */
  baseURI?: string;
  /** Starts the worker; tests and custom builds replace it. */
  createWorker?: () => WorkerEndpoint;
  /** Delay before restarting a worker that died, doubling per failure; default 500 ms. */
  workerRestartDelay?: number;
  /** The Web Locks the tabs elect their leader with; default `navigator.locks` (none: every tab leads). */
  locks?: LockManagerLike | null;
  /**
   * The app's own store for the server's changes, instead of the built-in IndexedDB store. The
   * resume point moves only after the database commits a batch.
   */
  database?: Database;
  /**
   * On first start, carry the older `SyncClient`'s localStorage id (and, with a `database`, its
   * LSN) into a database that has none, then remove those keys. Set by the compat layer.
   */
  legacyState?: boolean;
}

/** The endpoint a client without a `url` connects to. */
export const DEFAULT_SYNC_URL = '/api/sync';

/** The worker's `init` configuration for a client started with `options`. */
export function workerConfig(
  options: SyncServiceOptions,
  resolved: { url: string; clientId: string; dbName: string },
): WorkerConfig {
  return {
    ...DEFAULT_CONNECTION_OPTIONS,
    ...pickConnectionOptions(options),
    ...resolved,
    ...(options.token === undefined ? {} : { token: options.token }),
    ...(options.database ? { applyOnPage: true } : {}),
  };
}

/** The connection options that are positive finite numbers; the others take their defaults. */
function pickConnectionOptions(options: Partial<ConnectionOptions>): Partial<ConnectionOptions> {
  const picked: Partial<ConnectionOptions> = {};
  for (const key of ['heartbeatInterval', 'backoffInitial', 'backoffMax'] as const) {
    const value = options[key];
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) picked[key] = value;
  }
  return picked;
}
