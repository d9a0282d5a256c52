/**
 * What a page reads: the server's state in the local store with the client's own unacknowledged
 * writes on top (docs/local-first.md). Owns the pending layer (every operation the outbox has not
 * settled, from this tab and the others) and the live queries, and moves both by what happens:
 * a write here or in another tab, an acknowledgement, a rollback, a clear, a committed batch, a
 * reset. Reads wait for the layer's first load from the outbox; writes show at once.
 */
import type { LocalStore } from '../db/local-store.ts';
import type { Change } from '../protocol/change.ts';
import { SyncError } from '../protocol/errors.ts';
import type { LSN } from '../protocol/lsn.ts';
import type { QueuedOperation } from '../protocol/state.ts';
import { LiveQueries } from './live-queries.ts';
import { checkObserveArguments, type ObserveListener, type ObserveOptions } from './live-query.ts';
import { PendingLayer, type SyncEntity } from './pending-layer.ts';

export class LocalView {
  readonly #store: () => Promise<LocalStore>;
  readonly #layer = new PendingLayer();
  readonly #live: LiveQueries;
  #loaded: Promise<void> | undefined;
  /** While the first load runs: ids removed meanwhile, which the load must not bring back. */
  #removedWhileLoading: Set<string> | undefined;
  #closed = false;

  /** `report` hears what a live query's code threw (`observer`) and a type that could not be read (`storage`). */
  constructor(store: () => Promise<LocalStore>, report: (error: unknown, code: 'observer' | 'storage') => void) {
    this.#store = store;
    this.#live = new LiveQueries({
      layer: this.#layer,
      load: async (entityType) => {
        await this.load();
        return (await this.#store()).entities(entityType);
      },
      report,
    });
  }

  /** Live queries not yet stopped. */
  get observers(): number {
    return this.#live.size;
  }

  /**
   * Reads the outbox into the layer, once. Call it once this tab hears the other tabs, so that
   * nothing said between the read and the first message is missed.
   */
  load(): Promise<void> {
    this.#loaded ??= this.#load();
    return this.#loaded;
  }

  async #load(): Promise<void> {
    this.#removedWhileLoading = new Set();
    try {
      const operations = await (await this.#store()).operations();
      const removed = this.#removedWhileLoading;
      this.#touch(operations.filter((operation) => !removed.has(operation.id)));
    } finally {
      this.#removedWhileLoading = undefined;
    }
  }

  // ---- writes -------------------------------------------------------------------------------------

  /** Shows an operation being queued here, at once. Throws when its id is already in the layer. */
  show(operation: QueuedOperation): void {
    if (this.#layer.has(operation.id)) {
      throw new SyncError('operation', `An operation with id ${JSON.stringify(operation.id)} is already queued`);
    }
    this.#touch([operation]);
  }

  /** Operations another tab stored. */
  storedElsewhere(operations: readonly QueuedOperation[]): void {
    this.#touch(operations);
  }

  /** The server acknowledged `id`; `settled` when its record is gone already. */
  acknowledged(id: string, settled: boolean): void {
    if (settled) this.remove([id]);
    else this.#live.layerChanged(this.#layer.acknowledge(id));
  }

  /** Operations that leave the layer: settled, refused, cleared, or never stored. */
  remove(ids: readonly string[]): void {
    if (ids.length === 0) return;
    if (this.#removedWhileLoading) for (const id of ids) this.#removedWhileLoading.add(id);
    this.#live.layerChanged(this.#layer.remove(ids));
  }

  // ---- the server's state -------------------------------------------------------------------------

  /** One batch the worker committed; `settled` operations left the outbox in the same commit. */
  committed(changes: readonly Change[], lsn: LSN | undefined, settled: readonly string[] = []): void {
    if (settled.length > 0 && this.#removedWhileLoading) for (const id of settled) this.#removedWhileLoading.add(id);
    const touched = this.#layer.remove(settled);
    // Both before anyone hears: the queries call their listeners once, after this task's changes.
    if (changes.length > 0) this.#live.serverChanges(changes, lsn);
    this.#live.layerChanged(touched);
  }

  /** The store was emptied (`reset`); the layer stays. */
  reset(): void {
    this.#live.reset();
  }

  // ---- reads --------------------------------------------------------------------------------------

  async entity(entityType: string, entityId: string): Promise<SyncEntity | undefined> {
    await this.load();
    const base = await (await this.#store()).entity(entityType, entityId);
    return this.#layer.overlay(entityType, entityId, base);
  }

  async entities(entityType: string): Promise<SyncEntity[]> {
    await this.load();
    const bases: SyncEntity[] = await (await this.#store()).entities(entityType);
    const touched = new Set(this.#layer.touchedIds(entityType));
    if (touched.size === 0) return bases;
    const visible: SyncEntity[] = [];
    for (const base of bases) {
      const entity = touched.delete(base.entityId) ? this.#layer.overlay(entityType, base.entityId, base) : base;
      if (entity) visible.push(entity);
    }
    if (touched.size === 0) return visible;
    for (const entityId of touched) {
      const entity = this.#layer.overlay(entityType, entityId, undefined);
      if (entity) visible.push(entity);
    }
    return visible.sort((a, b) => (a.entityId < b.entityId ? -1 : a.entityId > b.entityId ? 1 : 0));
  }

  /** A live query; see `WorkerSyncService.observe`. Checks its arguments first. */
  observe(entityType: string, listener: ObserveListener, options?: ObserveOptions): () => void {
    const checked = checkObserveArguments(entityType, listener, options);
    if (this.#closed) throw new SyncError('closed', 'This sync client was cleaned up');
    return this.#live.observe(entityType, listener, checked);
  }

  /** Stops every live query. */
  close(): void {
    this.#closed = true;
    this.#live.close();
  }

  #touch(operations: readonly QueuedOperation[]): void {
    for (const operation of operations) this.#live.layerChanged(this.#layer.add(operation));
  }
}
