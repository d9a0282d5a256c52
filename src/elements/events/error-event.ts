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
