import type { LSN } from '../src/protocol/lsn.ts';
import type { WireOperation } from '../src/protocol/wire.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { editProblem, operationProblem, type InputLimits } from './limits.ts';
import { operationToEdit } from './operations.ts';
import { StoreRefusedError, StoreUnavailableError, type SyncStore, type WriteSequence } from './sync-store.ts';

/** Ms after which a deferred operation that was not sent again (the client cleared it) stops holding back the rest. */
export const DEFERRED_EXPIRY_MS = 60_000;

/** How one operation ended. */
export type OperationOutcome =
  | { kind: 'applied'; lsn: LSN; position: bigint }
  /** Not applied. `retryable`: nothing was stored and the client should send it again later. */
  | { kind: 'rejected'; message: string; retryable: boolean }
  /** The store failed for good: neither applied nor rejected; the client must send it elsewhere. */
  | { kind: 'store-failed' };

/**
 * One connection's writes: checks each operation against the input limits, turns it into an edit
 * and appends it to the store in the order the client sent it. Once an operation was deferred
 * (the store could not take it now), every later one is deferred too, untried, until the deferred
 * ids come back, so an outage never reorders one client's writes.
 */
export class OperationWriter {
  readonly #store: SyncStore;
  readonly #limits: InputLimits;
  readonly #now: () => number;
  /** Ids answered `retryable`, with when. */
  readonly #deferred = new Map<string, number>();
  /** This client's writes commit in the order they arrived (see SyncStore.append). */
  readonly #writes: WriteSequence = {};

  constructor(store: SyncStore, limits: InputLimits, now: () => number) {
    this.#store = store;
    this.#limits = limits;
    this.#now = now;
  }

  /** Applies `operation`; never rejects. A poison operation is refused without disturbing the rest. */
  async write(operation: WireOperation): Promise<OperationOutcome> {
    const problem = operationProblem(operation, this.#limits);
    if (problem !== undefined) return { kind: 'rejected', message: `operation rejected: ${problem}`, retryable: false };
    const edit = operationToEdit(operation, this.#now());
    if (typeof edit === 'string') return { kind: 'rejected', message: edit, retryable: false };
    const tooBig = editProblem(edit, this.#limits);
    if (tooBig !== undefined) return { kind: 'rejected', message: `operation rejected: ${tooBig}`, retryable: false };
    if (this.#holdBack(operation.id)) {
      return this.#defer(operation.id, 'an operation sent before it was deferred and has not been sent again yet; nothing was stored, so it can be sent again after that one');
    }
    try {
      const { lsn, position } = await this.#store.append([edit], operation.id, this.#writes);
      return { kind: 'applied', lsn, position };
    } catch (error) {
      // The store is down for a while and this write was certainly not applied.
      if (error instanceof StoreUnavailableError) return this.#defer(operation.id, error.message);
      // The store can never hold this write: rejected for good, like an invalid payload.
      if (error instanceof StoreRefusedError) return { kind: 'rejected', message: `operation rejected: ${error.message}`, retryable: false };
      // Not stored, so never acknowledged, and no final answer either: only another connection,
      // to a store that works again, can take it.
      if (this.#store.failure) return { kind: 'store-failed' };
      // Anything else failed on this operation alone: it is answered, and the connection goes on.
      process.emitWarning(`sync server: operation ${JSON.stringify(operation.id.slice(0, 80))} failed: ${errorMessage(error)}`);
      return { kind: 'rejected', message: `operation rejected: the server could not apply it (${errorMessage(error)})`, retryable: false };
    }
  }

  /**
   * True when `id` must wait behind a deferred operation. A deferred id that comes back is tried
   * (the client re-sends in order, so it is the next in line); one not seen again for
   * DEFERRED_EXPIRY_MS was dropped by the client and holds nothing back any longer.
   */
  #holdBack(id: string): boolean {
    const now = this.#now();
    for (const [deferredId, at] of this.#deferred) {
      if (now - at > DEFERRED_EXPIRY_MS) this.#deferred.delete(deferredId);
    }
    if (this.#deferred.delete(id)) return false;
    return this.#deferred.size > 0;
  }

  #defer(id: string, why: string): OperationOutcome {
    this.#deferred.set(id, this.#now());
    return { kind: 'rejected', message: `operation not applied: ${why}`, retryable: true };
  }
}
