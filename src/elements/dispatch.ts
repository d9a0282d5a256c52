import type { SyncEventDetails, SyncEventType } from '../client/service-events.ts';
import { ChangesEvent } from './events/changes-event.ts';
import { ConnectedEvent } from './events/connected-event.ts';
import { DisconnectedEvent } from './events/disconnected-event.ts';
import { SyncErrorEvent } from './events/error-event.ts';
import { SyncMessageEvent } from './events/message-event.ts';
import { OperationCompleteEvent } from './events/operation-complete-event.ts';
import { OperationErrorEvent } from './events/operation-error-event.ts';
import { ReconnectingEvent } from './events/reconnecting-event.ts';
import { StateChangeEvent } from './events/state-change-event.ts';
import { SyncCompletedEvent } from './events/sync-completed-event.ts';
import { SyncProgressEvent } from './events/sync-progress-event.ts';
import { SyncResetEvent } from './events/sync-reset-event.ts';
import { SyncStartedEvent } from './events/sync-started-event.ts';

type EventFactories = { [K in SyncEventType]: new (detail: SyncEventDetails[K]) => Event };

/** The DOM event class for each of the client's events. */
export const EVENT_CLASSES: EventFactories = {
  connected: ConnectedEvent,
  disconnected: DisconnectedEvent,
  reconnecting: ReconnectingEvent,
  sync_started: SyncStartedEvent,
  sync_progress: SyncProgressEvent,
  sync_completed: SyncCompletedEvent,
  sync_reset: SyncResetEvent,
  changes: ChangesEvent,
  operation_complete: OperationCompleteEvent,
  operation_error: OperationErrorEvent,
  state_change: StateChangeEvent,
  message: SyncMessageEvent,
  error: SyncErrorEvent,
};

