import type { StoredRecord } from './sync-store.ts';

interface Waiter {
  resolve(record: StoredRecord): void;
  reject(error: Error): void;
}

/** Writers waiting, by write id, for their write's record to be stamped and announced. */
export class StampWaiters {
  readonly #waiters = new Map<string, Set<Waiter>>();

  /** Waits for `writeId`'s record; `cancel` stops waiting. */
  waitFor(writeId: string): { promise: Promise<StoredRecord>; cancel(): void } {
    let waiter!: Waiter;
    const promise = new Promise<StoredRecord>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    // A writer that stopped waiting (cancel) after its record was already refused or the store
    // failed must not leave an unhandled rejection behind; those who wait still get it.
    promise.catch(() => {});
    let set = this.#waiters.get(writeId);
    if (!set) this.#waiters.set(writeId, (set = new Set()));
    set.add(waiter);
    return {
      promise,
      cancel: () => {
        set.delete(waiter);
        if (set.size === 0 && this.#waiters.get(writeId) === set) this.#waiters.delete(writeId);
      },
    };
  }

  resolve(writeId: string, record: StoredRecord): void {
    const waiters = this.#waiters.get(writeId);
    this.#waiters.delete(writeId);
    for (const waiter of waiters ?? []) waiter.resolve(record);
  }

  reject(writeId: string, error: Error): void {
    const waiters = this.#waiters.get(writeId);
    this.#waiters.delete(writeId);
    for (const waiter of waiters ?? []) waiter.reject(error);
  }

  rejectAll(error: Error): void {
    for (const waiters of this.#waiters.values()) for (const waiter of waiters) waiter.reject(error);
    this.#waiters.clear();
  }
}
