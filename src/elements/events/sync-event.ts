/**
 * Base of the element's events: a `CustomEvent` with a typed detail that bubbles and crosses
 * shadow roots. `SyncErrorEvent` is the one exception (see there).
 */
export class SyncEvent<T> extends CustomEvent<T> {
  constructor(type: string, detail: T, init: { bubbles?: boolean; composed?: boolean } = {}) {
    super(type, { detail, bubbles: init.bubbles ?? true, composed: init.composed ?? true });
  }
}
