import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The server began a catch-up; `total` is the number of changes to come, when known. */
export class SyncStartedEvent extends SyncEvent<SyncEventDetails['sync_started']> {
  static readonly eventName = 'sync_started';

  constructor(detail: SyncEventDetails['sync_started']) {
    super(SyncStartedEvent.eventName, detail);
  }
}
