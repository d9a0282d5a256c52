/**
 * Operations the server acknowledged with an `lsn` the stored resume point has not reached yet.
 * Their records stay in the outbox, so that every reader keeps showing their effects, and are
 * deleted in the same transaction as the commit that brings the resume point to their `lsn`:
 * no reader ever sees the value from before them again (docs/protocol.md, `operation_complete`).
 * Nothing here is stored: after a restart they are pending again, sent again, answered again.
 */
import { compareLSN, type LSN } from '../protocol/lsn.ts';
import type { QueuedOperation } from '../protocol/state.ts';

/** An acknowledged operation whose record a commit at `lsn` or later deletes. */
export interface Covered {
  id: string;
  lsn: LSN;
  /** Its outbox record. */
  group?: number;
}

export class Acknowledged {
  /** `told`: the page has heard `operation_complete` for it already. */
  readonly #waiting = new Map<string, { operation: QueuedOperation; lsn: LSN; told: boolean }>();

  get size(): number {
    return this.#waiting.size;
  }

  has(id: string): boolean {
    return this.#waiting.has(id);
  }

  ids(): ReadonlySet<string> {
    return new Set(this.#waiting.keys());
  }

  add(operation: QueuedOperation, lsn: LSN, told: boolean): void {
    this.#waiting.set(operation.id, { operation, lsn, told });
  }

  /** The operations a commit that brings the resume point to `upTo` covers. */
  coveredBy(upTo: LSN): Covered[] {
    const covered: Covered[] = [];
    for (const [id, { lsn, operation }] of this.#waiting) {
      if (compareLSN(lsn, upTo) <= 0) covered.push({ id, lsn, ...(operation.group === undefined ? {} : { group: operation.group }) });
    }
    return covered;
  }

  /**
   * Their records were deleted with the commit that covers them. Returns those the page has not
   * heard were acknowledged (a batch named them), with their positions.
   */
  settled(ids: readonly string[]): Covered[] {
    const untold: Covered[] = [];
    for (const id of ids) {
      const entry = this.#waiting.get(id);
      if (!entry) continue;
      this.#waiting.delete(id);
      if (!entry.told) untold.push({ id, lsn: entry.lsn });
    }
    return untold;
  }

  /** Forgets them all and returns their operations (a reset sends them again). */
  takeAll(): QueuedOperation[] {
    const operations = [...this.#waiting.values()].map(({ operation }) => operation);
    this.#waiting.clear();
    return operations;
  }
}
