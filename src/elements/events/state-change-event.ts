import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The state snapshot was replaced. */
export class StateChangeEvent extends SyncEvent<SyncEventDetails['state_change']> {
  static readonly eventName = 'state_change';

  constructor(detail: SyncEventDetails['state_change']) {
    super(StateChangeEvent.eventName, detail);
  }
}
