import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** A reconnection attempt is scheduled after `delay` ms. */
export class ReconnectingEvent extends SyncEvent<SyncEventDetails['reconnecting']> {
  static readonly eventName = 'reconnecting';

  constructor(detail: SyncEventDetails['reconnecting']) {
    super(ReconnectingEvent.eventName, detail);
  }
}
