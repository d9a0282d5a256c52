/** The sync client without a DOM element: `import { WorkerSyncService } from 'sync-connection/service'`. */
export { WorkerSyncService, DEFAULT_SYNC_URL, type SyncServiceOptions, type StoredOperation } from './client/sync-service.ts';
export type { Database, DatabaseTransaction } from './client/database.ts';
export { getNetworkStatus, type NetworkStatus } from './client/network.ts';
export { SyncWorkerManager } from './client/worker-manager.ts';
export { GlobalConnectionTracker } from './client/connection-tracker.ts';
export { LeaderElection } from './client/leader-election.ts';
export { SyncError, OperationRejectedError } from './protocol/errors.ts';
export { SYNC_EVENT_TYPES, type SyncEventDetails, type SyncEventType } from './client/service-events.ts';
export type { WorkerEndpoint } from './client/worker-endpoint.ts';
export type { StoredEntity } from './db/schema.ts';
export * from './protocol/index.ts';
