import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The server sent a frame of a type the protocol does not define. */
export class SyncMessageEvent extends SyncEvent<SyncEventDetails['message']> {
  static readonly eventName = 'message';

  constructor(detail: SyncEventDetails['message']) {
    super(SyncMessageEvent.eventName, detail);
  }
}

// Not in `HTMLElementEventMap`: <body>'s and <frameset>'s event maps extend it and the window's,
// which types `message` as MessageEvent; a different type there breaks lib.dom.d.ts for apps that
// check libraries (skipLibCheck false). `SyncConnectionElement`'s own addEventListener types it
// (`SyncConnectionElementEventMap`).
