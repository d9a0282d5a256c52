/**
 * Coalesces state snapshots into few `status` posts. A change schedules one post for a later
 * task; the engine flushes it before posting anything else, so the page never handles an event
 * or a request's result while holding an older state than the worker had when it posted them.
 */
import type { SyncState } from '../protocol/state.ts';

function sameFields(a: SyncState, b: SyncState): boolean {
  return (Object.keys(a) as (keyof SyncState)[]).every((key) => a[key] === b[key]);
}

export class StatusPosts {
  readonly #post: (state: SyncState) => void;
  /** What the page was last given. */
  #posted: SyncState;
  #due: SyncState | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(initial: SyncState, post: (state: SyncState) => void) {
    this.#posted = initial;
    this.#post = post;
  }

  /** `state` replaces any snapshot not posted yet; it goes out in a later task at the latest. */
  changed(state: SyncState): void {
    this.#due = state;
    this.#timer ??= setTimeout(() => this.flush(), 0);
  }

  /** The page was given these fields along with an event: they need no post of their own. */
  told(fields: Partial<SyncState>): void {
    this.#posted = { ...this.#posted, ...fields };
  }

  /** Posts the newest snapshot now, unless the page already has one equal to it. */
  flush(): void {
    const due = this.#due;
    if (due === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = undefined;
    if (sameFields(due, this.#posted)) return;
    this.#posted = due;
    this.#post(due);
  }
}
