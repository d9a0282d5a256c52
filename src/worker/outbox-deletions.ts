import type { LocalStore } from '../db/local-store.ts';
import type { OutboxEntry } from '../db/outbox-groups.ts';
import { errorMessage } from '../protocol/errors.ts';

/**
 * Deletes the outbox records of operations that are done, with one transaction at a time: those
 * that arrive while one runs join the next, so a burst of acknowledgements costs a few
 * transactions, not one each.
 */
export class OutboxDeletions {
  readonly #store: Pick<LocalStore, 'deleteOperations'>;
  readonly #onError: (message: string) => void;
  /** Records waiting for the next delete transaction. */
  #next: { entries: OutboxEntry[]; done: Promise<void>; resolve(): void } | undefined;
  #deleting = false;

  /** `onError` hears of a transaction that failed: its operations are done, their records stay. */
  constructor(store: Pick<LocalStore, 'deleteOperations'>, onError: (message: string) => void) {
    this.#store = store;
    this.#onError = onError;
  }

  /** Resolves once the transaction deleting `entry`'s record has committed (or failed, which is reported). */
  delete(entry: OutboxEntry): Promise<void> {
    let batch = this.#next;
    if (!batch) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => { resolve = r; });
      batch = this.#next = { entries: [], done, resolve };
      if (!this.#deleting) void this.#drain();
    }
    batch.entries.push(entry);
    return batch.done;
  }

  async #drain(): Promise<void> {
    this.#deleting = true;
    for (let batch = this.#next; batch; batch = this.#next) {
      await Promise.resolve(); // let the ids of this turn join
      this.#next = undefined;
      try {
        // A lost delete only means a re-send, which the server answers without applying twice.
        await this.#store.deleteOperations(batch.entries);
      } catch (error) {
        this.#onError(`${batch.entries.length} operation(s) are done but their outbox records could not be deleted: ${errorMessage(error)}`);
      }
      batch.resolve();
    }
    this.#deleting = false;
  }
}
