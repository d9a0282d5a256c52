/**
 * The client's write path: an operation is checked, shown in every read at once, reserved, stored
 * durably, and handed to whoever sends it; its promise settles with the server's answer, a clear,
 * or the client going away. The reads it touches are the {@link LocalView}'s.
 */
import { OperationRejectedError } from '../protocol/errors.ts';
import type { LSN } from '../protocol/lsn.ts';
import type { OperationInput, OperationResult, QueuedOperation } from '../protocol/state.ts';
import type { LocalView } from './local-view.ts';
import { toQueuedOperation } from './operation-input.ts';
import { OutboxWriter } from './outbox-writer.ts';
import type { PageStore } from './page-store.ts';
import { PendingOperations } from './pending-operations.ts';
import type { SharedConnection } from './shared-connection.ts';

/** An operation stored in the outbox, and the promise of the server's answer to it. */
export interface StoredOperation {
  id: string;
  acknowledged: Promise<OperationResult>;
}

/** What the write path needs of its client. */
export interface WritesHost {
  /** Starts the client (idempotent); the connection exists once it resolves. */
  start(): Promise<void>;
  connection(): SharedConnection;
  /** A follower's own count of the shared outbox. */
  pendingCounted(count: number): void;
}

export class Writes {
  readonly #pending = new PendingOperations();
  readonly #outbox: OutboxWriter;
  readonly #store: PageStore;
  readonly #view: LocalView;
  readonly #host: WritesHost;
  readonly #maxBytes: number;
  /** Operations whose records are in the outbox (a failure after that does not hide them). */
  readonly #stored = new WeakSet<QueuedOperation>();

  constructor(store: PageStore, view: LocalView, host: WritesHost, maxBytes: number) {
    this.#store = store;
    this.#outbox = new OutboxWriter(() => store.open());
    this.#view = view;
    this.#host = host;
    this.#maxBytes = maxBytes;
  }

  /** Checks, shows, reserves and stores an operation; resolves once it is durable. */
  async store(input: OperationInput): Promise<StoredOperation> {
    const operation = toQueuedOperation(input, this.#maxBytes);
    // Shown before anything waits: a read started after this call, even in this task, sees it.
    this.#view.show(operation);
    let acknowledged: Promise<OperationResult>;
    let told = false;
    try {
      acknowledged = this.#pending.reserve(operation.id);
      await this.#pending.store(operation.id, async () => {
        await this.#host.start();
        // The other tabs show it too, before it is stored: a write shows everywhere within a message.
        this.#host.connection().queued(operation);
        told = true;
        await this.#handOff(operation);
      });
    } catch (error) {
      // Not stored: its effects leave every read, here and in the tabs that were told of it.
      if (!this.#stored.has(operation)) {
        if (told) this.#host.connection().dropped([operation]);
        await this.#view.unshow(operation);
      }
      throw error;
    }
    return { id: operation.id, acknowledged };
  }

  /** Resolves once every operation reserved so far has been answered, refused or cleared. */
  settled(): Promise<void> {
    return this.#pending.settled();
  }

  /** The server acknowledged `id`; `settled` when the store already shows it and its record is gone. */
  acknowledged(id: string, lsn: LSN | undefined, settled: boolean): void {
    this.#pending.resolve(id, { id, ...(lsn === undefined ? {} : { lsn }) });
    this.#view.acknowledged(id, settled);
  }

  /** The server refused `id` for good: its promise rejects and its effects roll back. */
  refused(id: string, message: string): void {
    this.#pending.reject(id, new OperationRejectedError(id, message));
    this.#view.remove([id]);
  }

  /**
   * Clears the outbox where it is sent from, once the operations being stored here are in it,
   * and rejects the removed operations' promises (in every tab). Resolves with the removed ids.
   */
  async clear(): Promise<string[]> {
    await this.#pending.whenStored();
    const removed = await this.#host.connection().clearOutbox();
    this.cleared(removed);
    return removed;
  }

  /** Operations removed from the outbox by a clear, here or in another tab. */
  cleared(ids: readonly string[]): void {
    this.#pending.cancel(ids);
    this.#view.remove(ids);
  }

  /** A follower counts the shared outbox itself; the leader's state corrects it. */
  async countPending(): Promise<void> {
    try {
      const pending = await (await this.#store.open()).countOperations();
      if (!this.#host.connection().leading) this.#host.pendingCounted(pending);
    } catch {
      // The count is a hint; the operation itself is stored.
    }
  }

  /**
   * Stores again the operations this tab still awaits whose records are gone: a worker took
   * one out and died, or its tab closed, before the answer reached this tab. The server answers
   * an id it has applied again without applying it twice, so sending it again is how the answer
   * is learnt. Run when this tab's worker (before it connects) or the leader's has loaded the outbox.
   */
  async resendUnanswered(): Promise<void> {
    const awaited = this.#pending.awaited();
    if (awaited.length === 0) return;
    let held: Set<string>;
    try {
      held = await (await this.#store.open()).storedOperationIds(awaited.map(({ id }) => id));
    } catch {
      return; // the next worker started looks again
    }
    const lost = awaited.filter(({ id }) => !held.has(id) && this.#pending.awaits(id));
    await Promise.all(lost.map((operation) => this.#handOff(operation).catch(() => {
      // Still awaited: the next worker started looks again.
    })));
  }

  /** Hands the promises of unacknowledged operations over to `next`, which will answer them. */
  handOver(next: Writes): void {
    this.#pending.handOver(next.#pending);
  }

  /**
   * The client goes away: promises of stored operations reject (they stay queued for the next
   * client); resolves once an operation being stored has finished storing.
   */
  async close(): Promise<void> {
    this.#pending.close();
    await this.#pending.whenStored();
  }

  /**
   * Stores the operation, then tells whoever sends it, even when the client is going away (the
   * leader is the next client on this database); from then on its answer settles it.
   */
  async #handOff(operation: QueuedOperation): Promise<void> {
    await this.#outbox.write(operation);
    this.#stored.add(operation);
    this.#view.stored(operation);
    const connection = this.#host.connection();
    const sent = connection.send(operation);
    this.#pending.stored(operation);
    await sent;
    if (!connection.leading) await this.countPending();
  }
}

