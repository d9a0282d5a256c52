/**
 * The events `<sync-connection>` fires, by name, for the element's own `addEventListener`
 * overloads (in sync-connection.ts) and for the framework typings.
 */
import type { ChangesEvent } from './events/changes-event.ts';
import type { ConnectedEvent } from './events/connected-event.ts';
import type { DisconnectedEvent } from './events/disconnected-event.ts';
import type { SyncErrorEvent } from './events/error-event.ts';
import type { SyncMessageEvent } from './events/message-event.ts';
import type { OperationCompleteEvent } from './events/operation-complete-event.ts';
import type { OperationErrorEvent } from './events/operation-error-event.ts';
import type { ReconnectingEvent } from './events/reconnecting-event.ts';
import type { StateChangeEvent } from './events/state-change-event.ts';
import type { SyncCompletedEvent } from './events/sync-completed-event.ts';
import type { SyncProgressEvent } from './events/sync-progress-event.ts';
import type { SyncResetEvent } from './events/sync-reset-event.ts';
import type { SyncStartedEvent } from './events/sync-started-event.ts';

/** The events `<sync-connection>` fires, by name. */
export interface SyncConnectionEventMap {
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  reconnecting: ReconnectingEvent;
  sync_started: SyncStartedEvent;
  sync_progress: SyncProgressEvent;
  sync_completed: SyncCompletedEvent;
  sync_reset: SyncResetEvent;
  changes: ChangesEvent;
  operation_complete: OperationCompleteEvent;
  operation_error: OperationErrorEvent;
  state_change: StateChangeEvent;
  message: SyncMessageEvent;
  error: SyncErrorEvent;
}

/**
 * What `addEventListener` on a `<sync-connection>` knows: the DOM's element events and ours, ours
 * winning where a name is in both (`error`, `message`). Only this element's listeners are typed
 * with them: the global `HTMLElementEventMap`, which every element of the app shares, is left alone.
 */
export interface SyncConnectionElementEventMap
  extends Omit<HTMLElementEventMap, keyof SyncConnectionEventMap>, SyncConnectionEventMap {}
