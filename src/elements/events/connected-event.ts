import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The socket opened and the resume point was sent. */
export class ConnectedEvent extends SyncEvent<SyncEventDetails['connected']> {
  static readonly eventName = 'connected';

  constructor(detail: SyncEventDetails['connected']) {
    super(ConnectedEvent.eventName, detail);
  }
}
