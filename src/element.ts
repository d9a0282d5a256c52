/**
 * The elements' classes without registering them, and the types of their API:
 * `import { SyncConnectionElement } from 'sync-connection/element'; SyncConnectionElement.define('my-sync')`.
 */
export { SyncConnectionElement } from './elements/sync-connection.ts';
export type { SyncConnectionEventMap, SyncConnectionElementEventMap } from './elements/sync-connection-events.ts';
export { SyncStatusElement } from './elements/sync-status.ts';
export { syncStateContext } from './elements/context.ts';
export { SyncEvent } from './elements/events/sync-event.ts';
export { ConnectedEvent } from './elements/events/connected-event.ts';
export { DisconnectedEvent } from './elements/events/disconnected-event.ts';
export { ReconnectingEvent } from './elements/events/reconnecting-event.ts';
export { SyncStartedEvent } from './elements/events/sync-started-event.ts';
export { SyncProgressEvent } from './elements/events/sync-progress-event.ts';
export { SyncCompletedEvent } from './elements/events/sync-completed-event.ts';
export { SyncResetEvent } from './elements/events/sync-reset-event.ts';
export { ChangesEvent } from './elements/events/changes-event.ts';
export { OperationCompleteEvent } from './elements/events/operation-complete-event.ts';
export { OperationErrorEvent } from './elements/events/operation-error-event.ts';
export { StateChangeEvent } from './elements/events/state-change-event.ts';
export { SyncMessageEvent } from './elements/events/message-event.ts';
export { SyncErrorEvent } from './elements/events/error-event.ts';
// What the element's methods, properties and events take and give.
export { SyncError, OperationRejectedError } from './protocol/errors.ts';
export {
  SyncStatus,
  type OperationInput,
  type OperationResult,
  type SyncErrorCode,
  type SyncErrorDetail,
  type SyncProgress,
  type SyncRole,
  type SyncState,
} from './protocol/state.ts';
export type { Change } from './protocol/change.ts';
export type { LSN } from './protocol/lsn.ts';
export type { StoredEntity } from './db/schema.ts';
export type { SyncEntity } from './client/pending-layer.ts';
export type { ObserveDelta, ObserveListener, ObserveOptions } from './client/live-query.ts';
export type { Effect, EntityRef } from './protocol/effects.ts';
export type { Database, DatabaseTransaction } from './client/database.ts';
export type { NetworkStatus } from './client/network.ts';
export type { WorkerEndpoint } from './client/worker-endpoint.ts';
export type { SyncEventDetails } from './client/service-events.ts';
