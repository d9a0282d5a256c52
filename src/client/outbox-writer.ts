import type { LocalStore } from '../db/local-store.ts';
import type { QueuedOperation } from '../protocol/state.ts';
import { errorMessage, SyncError } from '../protocol/errors.ts';

interface Entry {
  operation: QueuedOperation;
  resolve(): void;
  reject(error: SyncError): void;
}

/**
 * Writes operations into the outbox with strict durability before anything resolves. One
 * transaction runs at a time; operations queued meanwhile share the next, so a burst costs a few
 * disk flushes instead of one each. When a shared transaction fails, each of its operations is
 * retried alone, so one duplicate id cannot sink the others.
 */
export class OutboxWriter {
  readonly #store: () => Promise<LocalStore>;
  #queue: Entry[] = [];
  #writing = false;

  constructor(store: () => Promise<LocalStore>) {
    this.#store = store;
  }

  /** Resolves once the operation is durably stored; rejects with a `SyncError`. */
  write(operation: QueuedOperation): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ operation, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    while (this.#queue.length > 0) {
      await Promise.resolve(); // let the calls of this turn join
      const batch = this.#queue;
      this.#queue = [];
      try {
        await this.#add(batch.map((entry) => entry.operation));
        for (const entry of batch) entry.resolve();
      } catch (error) {
        if (batch.length === 1) {
          batch[0]!.reject(toSyncError(error, batch[0]!.operation));
          continue;
        }
        for (const entry of batch) {
          try {
            await this.#add([entry.operation]);
            entry.resolve();
          } catch (single) {
            entry.reject(toSyncError(single, entry.operation));
          }
        }
      }
    }
    this.#writing = false;
  }

  async #add(operations: QueuedOperation[]): Promise<void> {
    await (await this.#store()).addOperations(operations);
  }
}

function toSyncError(error: unknown, operation: QueuedOperation): SyncError {
  if (error instanceof SyncError) return error;
  if (error instanceof DOMException && error.name === 'ConstraintError') {
    return new SyncError('operation', `An operation with id ${JSON.stringify(operation.id)} is already queued`, { cause: error });
  }
  return new SyncError('storage', `The operation could not be stored: ${errorMessage(error)}`, { cause: error });
}
