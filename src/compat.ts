/**
 * For code written for the older `SyncClient`: the module-level client and functions, the
 * compatibility layer, and the migration helpers. `import { syncClient } from 'sync-connection/compat'`.
 */
export {
  syncClient,
  syncClientLegacy,
  initializeSync,
  connectToSyncServer,
  disconnectFromSyncServer,
  getSyncStatus,
  cleanupBackgroundSync,
  sendSyncMessage,
} from './client/default-client.ts';
export { SyncClientCompat } from './client/compat.ts';
export {
  migrateEventListeners,
  migrateQueuedOperations,
  migrateSyncState,
  type LegacyListenerMap,
  type ListenerTarget,
  type MigratedOperations,
  type MigratedState,
  type MigrateStateOptions,
} from './client/migration.ts';
export {
  LEGACY_CLIENT_ID_KEY,
  LEGACY_LSN_KEY,
  type LegacySyncState,
  type SyncOperation,
} from './client/legacy-types.ts';
export * from './service.ts';
