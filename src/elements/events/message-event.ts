import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The server sent a frame of a type the protocol does not define. */
export class SyncMessageEvent extends SyncEvent<SyncEventDetails['message']> {
  static readonly eventName = 'message';

  constructor(detail: SyncEventDetails['message']) {
    super(SyncMessageEvent.eventName, detail);
  }
}
