/**
 * The public entry. Importing it registers `<sync-connection>` and `<sync-status>` (the provider
 * first, so a status element never misses its context); nothing else happens at import.
 */
import { SyncConnectionElement } from './elements/sync-connection.ts';
import { SyncStatusElement } from './elements/sync-status.ts';

SyncConnectionElement.define();
SyncStatusElement.define();

export { SyncConnectionElement, SyncStatusElement };
export { syncStateContext } from './elements/context.ts';
export { SyncEvent } from './elements/events/sync-event.ts';
export { ConnectedEvent } from './elements/events/connected-event.ts';
export { DisconnectedEvent } from './elements/events/disconnected-event.ts';
export { ReconnectingEvent } from './elements/events/reconnecting-event.ts';
export { SyncStartedEvent } from './elements/events/sync-started-event.ts';
export { SyncProgressEvent } from './elements/events/sync-progress-event.ts';
export { SyncCompletedEvent } from './elements/events/sync-completed-event.ts';
export { ChangesEvent } from './elements/events/changes-event.ts';
export { OperationCompleteEvent } from './elements/events/operation-complete-event.ts';
export { OperationErrorEvent } from './elements/events/operation-error-event.ts';
export { StateChangeEvent } from './elements/events/state-change-event.ts';
export { SyncMessageEvent } from './elements/events/message-event.ts';
export { SyncErrorEvent } from './elements/events/error-event.ts';
export { WorkerSyncService, type SyncServiceOptions } from './client/sync-service.ts';
export { getNetworkStatus, type NetworkStatus } from './client/network.ts';
export { SyncWorkerManager } from './client/worker-manager.ts';
export { GlobalConnectionTracker } from './client/connection-tracker.ts';
export { LeaderElection } from './client/leader-election.ts';
export { SyncError, OperationRejectedError } from './client/errors.ts';
export type { SyncEventDetails, SyncEventType } from './client/service-events.ts';
export type { WorkerEndpoint } from './client/worker-endpoint.ts';
export type { StoredEntity } from './db/schema.ts';
export * from './protocol/index.ts';
