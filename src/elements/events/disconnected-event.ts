import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The socket closed; `willReconnect` says whether a retry follows. */
export class DisconnectedEvent extends SyncEvent<SyncEventDetails['disconnected']> {
  static readonly eventName = 'disconnected';

  constructor(detail: SyncEventDetails['disconnected']) {
    super(DisconnectedEvent.eventName, detail);
  }
}
