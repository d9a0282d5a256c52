/**
 * The older `SyncClient` API's module-level client and functions. Creating these opens nothing: the
 * worker, the database, the tab channel and the listeners start on first use.
 */
import type { SyncState } from '../protocol/state.ts';
import { SyncClientCompat } from './compat.ts';
import type { Database } from './database.ts';
import { WorkerSyncService, type SyncServiceOptions } from './sync-service.ts';

/**
 * The page's default client (endpoint `/api/sync`, database `sync-connection`); on first start it
 * carries the older client's localStorage state over.
 */
export const syncClient: WorkerSyncService = /* @__PURE__ */ new WorkerSyncService({ legacyState: true });

/** The older client's interface over {@link syncClient}. */
export const syncClientLegacy: SyncClientCompat = /* @__PURE__ */ new SyncClientCompat(syncClient);

/**
 * Configures and starts the default client: `db` receives the server's changes (omit it for the
 * built-in store), `config` sets the endpoint, database name, token... before it starts.
 */
export async function initializeSync(db?: Database, config?: SyncServiceOptions): Promise<void> {
  syncClient.configure({ ...config, ...(db ? { database: db } : {}) });
  await syncClient.initialize();
}

/** Starts (when needed) and connects the default client. */
export function connectToSyncServer(): Promise<void> {
  return syncClientLegacy.connect();
}

export function disconnectFromSyncServer(graceful = true): Promise<void> {
  return syncClient.disconnect(graceful);
}

/** The default client's state as its worker has it now. */
export function getSyncStatus(): Promise<SyncState> {
  return syncClient.getStatus();
}

/** Stops the default client for good; its unacknowledged operations stay queued. */
export function cleanupBackgroundSync(): Promise<void> {
  return syncClientLegacy.cleanup();
}

/** Asks the server to resend everything after the default client's stored LSN. */
export function sendSyncMessage(): Promise<void> {
  return syncClient.sendSyncMessage();
}
