/**
 * What the framework helpers share: a live query on a source, the rows it last gave, and a stop
 * that lets a query started again at once reuse what the first one loaded.
 */
import type { ObserveListener, ObserveOptions } from '../client/live-query.ts';
import type { SyncEntity } from '../client/pending-layer.ts';

/** What a live query runs on: a `<sync-connection>` element or a `WorkerSyncService`. */
export interface EntitySource {
  observe(entityType: string, listener: ObserveListener, options?: ObserveOptions): () => void;
}

/** The rows before a query's first result: one frozen empty array, the same every time. */
export const NO_ROWS: readonly SyncEntity[] = Object.freeze([]);

/** The rows of one helper's live query, kept across the query's restarts. */
export class LiveRows {
  #rows = NO_ROWS;
  #key: unknown;
  #entityType: string | undefined;

  /**
   * The rows last given by a query on `key` (the source as the helper was given it) and
   * `entityType`; none when the last result came from another source or type. A restart with
   * other options keeps them until its first result.
   */
  rowsOf(key: unknown, entityType: string): readonly SyncEntity[] {
    return key === this.#key && entityType === this.#entityType ? this.#rows : NO_ROWS;
  }

  /**
   * Starts a query on `source`; each result becomes the rows of `key` and `entityType`, then
   * `changed` is called. The function returned silences the query at once and stops it in the
   * microtask after: a query started again in the same task (React's StrictMode, an option that
   * changed) finds its entity type still in memory instead of reading it from IndexedDB again.
   */
  observe(source: EntitySource, entityType: string, options: ObserveOptions, changed: () => void, key: unknown = source): () => void {
    let live = true;
    const stop = source.observe(entityType, (rows) => {
      if (!live) return;
      this.#rows = rows;
      this.#key = key;
      this.#entityType = entityType;
      changed();
    }, options);
    return () => {
      if (!live) return;
      live = false;
      queueMicrotask(stop);
    };
  }
}
