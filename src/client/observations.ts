/**
 * Live queries that belong to something longer-lived than one client: an element restarts its
 * client when its `url` or database changes, and its queries move to the new client. After a move,
 * a listener's next call tells what differs from the rows it was last given.
 */
import { sameRecord } from './live-queries.ts';
import { checkObserveArguments, diffRows, type ObserveDelta, type ObserveListener, type ObserveOptions } from './live-query.ts';
import type { SyncEntity } from './pending-layer.ts';

/** What can run a live query: a `WorkerSyncService`. */
export interface Observable {
  observe(entityType: string, listener: ObserveListener, options?: ObserveOptions): () => void;
}

interface Observation {
  readonly entityType: string;
  readonly listener: ObserveListener;
  readonly options: ObserveOptions;
  stop: (() => void) | undefined;
  /** The rows last given; undefined before the first call. */
  rows: readonly SyncEntity[] | undefined;
  /** Moved to another client since the last call. */
  moved: boolean;
}

export class Observations {
  readonly #all = new Set<Observation>();
  #source: Observable | undefined;

  get size(): number {
    return this.#all.size;
  }

  /** Adds a query (arguments checked at once); returns the function that stops it. */
  add(entityType: string, listener: ObserveListener, options?: ObserveOptions): () => void {
    const checked = checkObserveArguments(entityType, listener, options);
    const observation: Observation = { entityType, listener, options: checked, stop: undefined, rows: undefined, moved: false };
    this.#all.add(observation);
    if (this.#source) this.#run(observation, this.#source);
    return () => {
      observation.stop?.();
      observation.stop = undefined;
      this.#all.delete(observation);
    };
  }

  /** Runs every query on `source` (the new client). */
  attach(source: Observable): void {
    this.#source = source;
    for (const observation of this.#all) {
      if (observation.rows) observation.moved = true;
      this.#run(observation, source);
    }
  }

  /** Stops every query on the client they ran on; they run again on the next one attached. */
  detach(): void {
    this.#source = undefined;
    for (const observation of this.#all) {
      observation.stop?.();
      observation.stop = undefined;
    }
  }

  /** Stops every query for good. */
  close(): void {
    this.detach();
    this.#all.clear();
  }

  #run(observation: Observation, source: Observable): void {
    observation.stop = source.observe(observation.entityType, (rows, delta) => {
      // After a move the new client's first result is told as what differs from the old one's last.
      const moved = observation.moved && observation.rows;
      const told: ObserveDelta = moved ? diffRows(observation.rows!, rows, sameRecord) : delta;
      observation.moved = false;
      observation.rows = rows;
      if (moved && told.added.length + told.updated.length + told.removed.length === 0) return;
      observation.listener(rows, told);
    }, observation.options);
  }
}
