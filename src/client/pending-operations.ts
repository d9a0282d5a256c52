import { SyncError } from '../protocol/errors.ts';
import type { OperationResult, QueuedOperation } from '../protocol/state.ts';

/** The rejection of an operation a clear removed from the outbox. */
const CANCELLED = 'Operation cancelled due to client cleanup';

/** The rejection of an operation whose client went away before the server answered. */
function stillQueued(): SyncError {
  return new SyncError(
    'closed',
    'The sync client was cleaned up before the server acknowledged the operation; it stays queued and the next client on this database sends it (do not queue it again)',
  );
}

interface Entry {
  resolve(result: OperationResult): void;
  reject(error: Error): void;
  /** Its record was put in the outbox: from now on the server's answer (or a clear) settles it. */
  stored?: QueuedOperation;
}

/**
 * The promises of the operations queued in this tab, from the moment an id is reserved to the
 * server's answer: reserve, mark stored, settle, cancel, and hand over to a successor client.
 */
export class PendingOperations {
  readonly #entries = new Map<string, Entry>();
  /** Storing under way (reserved, record not yet written); a clear waits for them. */
  readonly #storing = new Set<Promise<void>>();
  /** One promise per operation not yet answered; settles (never rejects) with it. */
  readonly #unanswered = new Set<Promise<void>>();
  #closed = false;

  /**
   * Reserves `id` before anything waits, so that the same id queued twice at once is refused
   * instead of taking the first one's place. Returns the promise of the answer.
   */
  reserve(id: string): Promise<OperationResult> {
    if (this.#entries.has(id)) throw new SyncError('operation', `An operation with id ${JSON.stringify(id)} is already queued`);
    let entry!: Entry;
    const answer = new Promise<OperationResult>((resolve, reject) => { entry = { resolve, reject }; });
    this.#entries.set(id, entry);
    const answered = answer.then(() => undefined, () => undefined);
    this.#unanswered.add(answered);
    void answered.then(() => this.#unanswered.delete(answered));
    return answer;
  }

  /**
   * Runs `storing` for the reserved `id`; when it fails, the reservation is rejected with its
   * error and released. Rejects as `storing` does.
   */
  async store(id: string, storing: () => Promise<void>): Promise<void> {
    const run = storing();
    this.#storing.add(run);
    try {
      await run;
    } catch (error) {
      this.reject(id, error instanceof Error ? error : new Error(String(error)));
      throw error;
    } finally {
      this.#storing.delete(run);
    }
  }

  /**
   * The record of `id` is in the outbox. Throws when the client went away meanwhile: the
   * operation stays queued for the next client, and its storing fails.
   */
  stored(operation: QueuedOperation): void {
    if (this.#closed) throw stillQueued();
    const entry = this.#entries.get(operation.id);
    if (entry) entry.stored = operation;
  }

  /** The stored operations still waiting for their answer. */
  awaited(): QueuedOperation[] {
    const operations: QueuedOperation[] = [];
    for (const { stored } of this.#entries.values()) if (stored) operations.push(stored);
    return operations;
  }

  /** Whether `id` still waits for its answer. */
  awaits(id: string): boolean {
    return this.#entries.has(id);
  }

  /** Settles once every operation being stored now is stored (or failed). */
  async whenStored(): Promise<void> {
    await Promise.allSettled([...this.#storing]);
  }

  /** Resolves once every operation reserved so far has been answered, refused or cleared. */
  async settled(): Promise<void> {
    await Promise.all([...this.#unanswered]);
  }

  resolve(id: string, result: OperationResult): void {
    this.#entries.get(id)?.resolve(result);
    this.#entries.delete(id);
  }

  reject(id: string, error: Error): void {
    this.#entries.get(id)?.reject(error);
    this.#entries.delete(id);
  }

  /** Rejects the operations of `ids`, removed from the outbox by a clear. */
  cancel(ids: readonly string[]): void {
    for (const id of ids) this.reject(id, new SyncError('operation', CANCELLED));
  }

  /** Moves the promises of stored operations to `next`, which will answer them. */
  handOver(next: PendingOperations): void {
    for (const [id, entry] of this.#entries) {
      if (!entry.stored) continue;
      next.#entries.set(id, entry);
      this.#entries.delete(id);
    }
  }

  /**
   * The client goes away: every stored operation's promise rejects (the operation stays queued
   * for the next client); a reservation still storing fails with {@link stillQueued} itself.
   */
  close(): void {
    this.#closed = true;
    for (const [id, entry] of [...this.#entries]) {
      if (entry.stored) this.reject(id, stillQueued());
    }
  }
}
