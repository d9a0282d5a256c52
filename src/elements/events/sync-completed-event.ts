import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The catch-up is done and the store is live at `lsn`. */
export class SyncCompletedEvent extends SyncEvent<SyncEventDetails['sync_completed']> {
  static readonly eventName = 'sync_completed';

  constructor(detail: SyncEventDetails['sync_completed']) {
    super(SyncCompletedEvent.eventName, detail);
  }
}
