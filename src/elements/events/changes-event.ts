import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** Changes were applied to the local store, in order. */
export class ChangesEvent extends SyncEvent<SyncEventDetails['changes']> {
  static readonly eventName = 'changes';

  constructor(detail: SyncEventDetails['changes']) {
    super(ChangesEvent.eventName, detail);
  }
}
