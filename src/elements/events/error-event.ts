import type { SyncErrorDetail } from '../../protocol/state.ts';
import { SyncEvent } from './sync-event.ts';

/**
 * Something went wrong: `detail` is `{ code, message, cause? }`. Like native `error` events it
 * neither bubbles nor is composed, so it never reaches `window.onerror` handlers.
 */
export class SyncErrorEvent extends SyncEvent<SyncErrorDetail> {
  static readonly eventName = 'error';

  constructor(detail: SyncErrorDetail) {
    super(SyncErrorEvent.eventName, detail, { bubbles: false, composed: false });
  }
}

// Not in `HTMLElementEventMap`: the DOM types `error` there as ErrorEvent, for every element, and
// a different type breaks lib.dom.d.ts for apps that check libraries (skipLibCheck false).
// `SyncConnectionElement`'s own addEventListener types it (`SyncConnectionElementEventMap`).
