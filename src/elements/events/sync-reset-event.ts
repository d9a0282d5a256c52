import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/**
 * The server's log does not continue from the stored resume point (a restored or replaced
 * database, or what this client may see changed): the local store was emptied, queued operations
 * kept, and a catch-up from the start follows.
 */
export class SyncResetEvent extends SyncEvent<SyncEventDetails['sync_reset']> {
  static readonly eventName = 'sync_reset';

  constructor(detail: SyncEventDetails['sync_reset']) {
    super(SyncResetEvent.eventName, detail);
  }
}
