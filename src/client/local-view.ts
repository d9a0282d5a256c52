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

/** What the view needs of its client. */
export interface LocalViewHost {
  store(): Promise<LocalStore>;
  /** Starts the client, so that this tab hears the others; may fail (a bad URL), reads go on. */
  start(): Promise<void>;
  /** The client writes the server's changes to the app's own Database: there is nothing to read here. */
  ownDatabase(): boolean;
  /** A live query's code threw (`observer`), or a type could not be read (`storage`). */
  report(error: unknown, code: 'observer' | 'storage'): void;
}

export class LocalView {
  readonly #host: LocalViewHost;
  readonly #layer = new PendingLayer();
  readonly #live: LiveQueries;
  /** Set by the first read: the client started (if it can), then the layer loaded. */
  #loaded: Promise<void> | undefined;
  /** While the first load runs: ids removed meanwhile, which the load must not bring back. */
  #removedWhileLoading: Set<string> | undefined;
  #closed = false;

  constructor(host: LocalViewHost) {
    this.#host = host;
    this.#live = new LiveQueries({
      layer: this.#layer,
      load: async (entityType) => {
        await this.#ready();
        return (await host.store()).entities(entityType);
      },
      report: (error, code) => host.report(error, code),
    });
  }

  /** Live queries not yet stopped. */
  get observers(): number {
    return this.#live.size;
  }

  /**
   * Reads the outbox into the layer, once, after the client started: then this tab hears the other
   * tabs, and nothing said between the read and the first message is missed.
   */
  #ready(): Promise<void> {
    if (this.#host.ownDatabase()) {
      return Promise.reject(new SyncError('storage', 'This client writes the changes to your own Database: read the entities from it'));
    }
    this.#loaded ??= this.#host.start().then(() => this.#load(), () => this.#load());
    return this.#loaded;
  }

  async #load(): Promise<void> {
    this.#removedWhileLoading = new Set();
    try {
      const operations = await (await this.#host.store()).operations();
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

  /** One entity as this client sees it; see `WorkerSyncService.getEntity`. */
  async entity(entityType: string, entityId: string): Promise<SyncEntity | undefined> {
    await this.#ready();
    const base = await (await this.#host.store()).entity(entityType, entityId);
    return this.#layer.overlay(entityType, entityId, base);
  }

  /** Every entity of one type as this client sees it, by entity id. */
  async entities(entityType: string): Promise<SyncEntity[]> {
    await this.#ready();
    const bases: SyncEntity[] = await (await this.#host.store()).entities(entityType);
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
    if (this.#host.ownDatabase()) throw new SyncError('storage', 'This client writes the changes to your own Database: observe that instead');
    const stop = this.#live.observe(entityType, listener, checked);
    void this.#ready().catch(() => undefined);
    return stop;
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
