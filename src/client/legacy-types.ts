/** The shapes the older `SyncClient` worked with, as apps moving over still hold them. */

/**
 * An operation of the older client. One with `execute` ran a function of the page's, which
 * cannot be stored or sent to a worker; one without it is sent to the server as `{ type,
 * payload }` (the older `data` is read as the payload).
 */
export interface SyncOperation {
  id?: string;
  type: string;
  payload?: unknown;
  data?: unknown;
  priority?: number;
  timestamp?: number;
  retryCount?: number;
  execute?: () => unknown;
  resolve?: (value: unknown) => void;
  reject?: (error: Error) => void;
}

/** The older client's state, as it kept it (and, in part, in localStorage). */
export interface LegacySyncState {
  clientId?: string | null;
  lastLSN?: string | null;
  isConnected?: boolean;
  isConnecting?: boolean;
  reconnectAttempts?: number;
}

/** The localStorage keys where the older client kept its id and resume point. */
export const LEGACY_CLIENT_ID_KEY = 'sync_client_id';
export const LEGACY_LSN_KEY = 'sync_last_lsn';
