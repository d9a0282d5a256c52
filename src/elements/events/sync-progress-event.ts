import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** A catch-up batch was applied. */
export class SyncProgressEvent extends SyncEvent<SyncEventDetails['sync_progress']> {
  static readonly eventName = 'sync_progress';

  constructor(detail: SyncEventDetails['sync_progress']) {
    super(SyncProgressEvent.eventName, detail);
  }
}
