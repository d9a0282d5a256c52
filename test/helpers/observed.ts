/** Records the calls of a live query's listener, and waits for one that matches. */
import type { ObserveDelta } from '../../src/client/live-query.ts';
import type { SyncEntity } from '../../src/client/pending-layer.ts';
import { within } from './wait.ts';

export interface ObservedCall {
  rows: readonly SyncEntity[];
  delta: ObserveDelta;
}

export class Observed {
  readonly calls: ObservedCall[] = [];
  readonly #watchers = new Set<() => void>();

  /** The listener to give `observe`. */
  readonly listener = (rows: readonly SyncEntity[], delta: ObserveDelta): void => {
    this.calls.push({ rows, delta });
    for (const watcher of [...this.#watchers]) watcher();
  };

  get last(): ObservedCall | undefined {
    return this.calls.at(-1);
  }

  /** The rows of the last call, by entity id. */
  row(entityId: string): SyncEntity | undefined {
    return this.last?.rows.find((row) => row.entityId === entityId);
  }

  ids(): string[] {
    return this.last?.rows.map((row) => row.entityId) ?? [];
  }

  /** The first call (at index `from` or later) whose rows satisfy `match`, made already or still to come. */
  waitFor(what: string, match: (rows: readonly SyncEntity[], call: ObservedCall) => boolean, from = 0, timeout = 8000): Promise<ObservedCall> {
    const found = (): ObservedCall | undefined => this.calls.slice(from).find((call) => match(call.rows, call));
    const already = found();
    if (already) return Promise.resolve(already);
    let watcher!: () => void;
    const promise = new Promise<ObservedCall>((resolve) => {
      watcher = () => {
        const call = found();
        if (call) resolve(call);
      };
      this.#watchers.add(watcher);
    });
    return within(promise, `an observer call with ${what} (last rows: ${JSON.stringify(this.last?.rows.map((r) => [r.entityId, r.data, r.pending]))?.slice(0, 300)})`, timeout)
      .finally(() => this.#watchers.delete(watcher));
  }
}

/** Lets every queued task and microtask run: what is due has happened after it. */
export function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
