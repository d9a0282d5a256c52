/**
 * Folds the segments (whole commits) into `entities` (one record per entity) when the worker has
 * nothing else to do: a few hundred changes per transaction, oldest first, the last change to an
 * entity winning, the folded segments deleted and `meta.foldedThrough` moved in the same
 * transaction. Readers meanwhile find the segments' changes in memory (the page hears every commit
 * and every fold), so folding late costs nothing but IndexedDB work off the critical path.
 */
import type { SyncDB } from '../db/schema.ts';
import { storedEntity } from '../db/records.ts';
import type { Change } from '../protocol/change.ts';
import { errorMessage } from '../protocol/errors.ts';
import type { LSN } from '../protocol/lsn.ts';

/** About this many changes per fold transaction (a whole segment at least). */
const FOLD_CHANGES = 500;
/**
 * A fold starts once no commit came for this long, so that it does not hold IndexedDB while a
 * burst of commits and outbox writes is under way; but never later than {@link MAX_DELAY_MS}
 * after the first commit waiting, so that a steady stream is folded too.
 */
const QUIET_MS = 100;
const MAX_DELAY_MS = 2_000;

const ignore = (): void => {};

export interface FolderHost {
  /** True when no server frame waits: folding then takes no time from anything else. */
  idle(): boolean;
  /** Segments up to and including `through` are in `entities` now, and gone. */
  folded(through: number): void;
  /** A fold failed; it is tried again the next time the worker is idle. */
  failed(message: string): void;
}

export class Folder {
  readonly #db: SyncDB;
  readonly #host: FolderHost;
  #running = false;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the first request not yet run came. */
  #since: number | undefined;

  constructor(db: SyncDB, host: FolderHost) {
    this.#db = db;
    this.#host = host;
  }

  /** Folds what there is once the worker is quiet, while it stays idle. Safe to call at any time. */
  request(): void {
    if (this.#closed) return;
    const now = Date.now();
    this.#since ??= now;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#since = undefined;
      this.#start();
    }, Math.max(0, Math.min(QUIET_MS, this.#since + MAX_DELAY_MS - now)));
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #start(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    void this.#run();
  }

  async #run(): Promise<void> {
    try {
      while (!this.#closed && this.#host.idle() && await this.#foldSome()) {
        // Let the frames that came meanwhile go first.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    } catch (error) {
      if (!this.#closed) this.#host.failed(`Could not fold the stored changes: ${errorMessage(error)}`);
    } finally {
      this.#running = false;
    }
  }

  /** One fold transaction; true when there may be more to fold. */
  async #foldSome(): Promise<boolean> {
    const tx = this.#db.transaction(['segments', 'entities', 'meta'], 'readwrite');
    const done = tx.done;
    done.catch(ignore);
    const segments = tx.objectStore('segments');
    const latest = new Map<string, Map<string, { change: Change; lsn: LSN | undefined }>>();
    let through: number | undefined;
    let count = 0;
    let cursor = await segments.openCursor();
    while (cursor && count < FOLD_CHANGES) {
      through = cursor.key;
      for (const { changes, lsn } of cursor.value.batches) {
        for (const change of changes) {
          let ids = latest.get(change.entityType);
          if (!ids) latest.set(change.entityType, (ids = new Map()));
          ids.set(change.entityId, { change, lsn });
          count += 1;
        }
      }
      cursor = await cursor.continue();
    }
    const more = cursor !== null;
    if (through === undefined) {
      await done;
      return false;
    }
    try {
      const entities = tx.objectStore('entities');
      for (const ids of latest.values()) {
        for (const { change, lsn } of ids.values()) {
          if (change.type === 'update') entities.put(storedEntity(change, lsn)).catch(ignore);
          else entities.delete([change.entityType, change.entityId]).catch(ignore);
        }
      }
      segments.delete(IDBKeyRange.upperBound(through)).catch(ignore);
      tx.objectStore('meta').put(through, 'foldedThrough').catch(ignore);
    } catch (error) {
      tx.abort(); // nothing of a fold that could not be written whole
      throw error;
    }
    await done;
    if (!this.#closed) this.#host.folded(through);
    return more;
  }
}
