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
import { RecentChanges } from './recent-changes.ts';

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

/** How long another tab's operation may show before its storing is heard, before the outbox is checked. */
const UNCONFIRMED_MS = 5_000;

/** How many ids that left the layer are remembered against late announcements. */
const GONE_REMEMBERED = 10_000;

export class LocalView {
  readonly #host: LocalViewHost;
  readonly #layer = new PendingLayer();
  /** The committed changes not folded into `entities` yet. */
  readonly #recent = new RecentChanges();
  readonly #live: LiveQueries;
  /** Set by the first read: the client started (if it can), then the layer loaded. */
  #loaded: Promise<void> | undefined;
  /** Ids removed from the layer while a read of the outbox runs, which that read must not bring back. */
  readonly #watchers = new Set<Set<string>>();
  /** Operations shown by this tab whose records are not stored yet. */
  readonly #unstored = new Set<string>();
  /** The resume point of the last commit this view heard of, or read. */
  #heard: LSN | undefined;
  /** Ids that left the layer lately: an announcement of one that arrives late shows nothing. */
  readonly #gone = new Set<string>();
  /** Other tabs' operations shown before they were stored, and since when. */
  readonly #unconfirmed = new Map<string, number>();
  #confirming: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(host: LocalViewHost) {
    this.#host = host;
    this.#live = new LiveQueries({
      layer: this.#layer,
      load: async (entityType) => {
        await this.#ready();
        const { entities, foldedThrough } = await (await host.store()).typeSnapshot(entityType);
        // Every commit this page heard of is in the recent changes: the read brought up to date.
        return this.#recent.merge(entityType, entities, foldedThrough);
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
    this.#loaded ??= this.#host.start().then(() => this.#readOutbox(), () => this.#readOutbox());
    return this.#loaded;
  }

  /**
   * Makes the layer what the outbox holds (and this tab's writes not stored yet): operations it
   * does not hold leave, the others are shown. Ids removed while it reads stay removed.
   */
  async #readOutbox(): Promise<void> {
    const removed = this.#watch();
    try {
      const { operations, segments, foldedThrough } = await (await this.#host.store()).unfolded();
      this.#recent.load(segments, foldedThrough);
      const stored = new Set(operations.map((operation) => operation.id));
      this.remove([...this.#layer.ids()].filter((id) => !stored.has(id) && !this.#unstored.has(id)));
      this.#touch(operations.filter((operation) => !removed.has(operation.id)));
    } finally {
      this.#watchers.delete(removed);
    }
  }

  /** A set that collects the ids removed from now until it is dropped from `#watchers`. */
  #watch(): Set<string> {
    const removed = new Set<string>();
    this.#watchers.add(removed);
    return removed;
  }

  // ---- writes -------------------------------------------------------------------------------------

  /** Shows an operation being queued here, at once. Throws when its id is already in the layer. */
  show(operation: QueuedOperation): void {
    if (this.#layer.has(operation.id)) {
      throw new SyncError('operation', `An operation with id ${JSON.stringify(operation.id)} is already queued`);
    }
    this.#unstored.add(operation.id);
    this.#touch([operation]);
  }

  /** The operation this tab showed is stored now. */
  stored(operation: QueuedOperation): void {
    this.#unstored.delete(operation.id);
  }

  /**
   * An operation shown before it was stored (here or in another tab) was not stored: it leaves,
   * unless the layer holds another operation with its id. If the outbox holds one with its id
   * (stored before: the new one was refused as a duplicate), that one shows.
   */
  async unshow(operation: QueuedOperation): Promise<void> {
    this.#unstored.delete(operation.id);
    if (!this.#layer.holds(operation)) return;
    // Read first, then swap in one step: the id never shows nothing in between.
    const removed = this.#watch();
    let stored: QueuedOperation | undefined;
    try {
      [stored] = await (await this.#host.store()).operationsByIds([operation.id]);
    } catch {
      // Not readable now: the next resync shows what the outbox holds.
    } finally {
      this.#watchers.delete(removed);
    }
    const touched = this.#layer.removeAdded(operation);
    if (stored && !removed.has(stored.id)) touched.push(...this.#layer.add(stored));
    this.#live.layerChanged(touched);
  }

  /**
   * Operations another tab is queueing (`stored` once they are in the outbox). An announcement
   * that arrives after its operation left the layer (the tabs' messages and the leader's events
   * are not ordered with each other) shows nothing. One that is never followed by its storing
   * (the other tab closed first) is checked against the outbox after a while.
   */
  queuedElsewhere(operations: readonly QueuedOperation[], stored: boolean): void {
    const now = Date.now();
    const fresh: QueuedOperation[] = [];
    const again: string[] = [];
    for (const operation of operations) {
      if (this.#gone.has(operation.id)) {
        // Stored again after it left (the same id queued anew), or a late announcement: the outbox says.
        if (stored) again.push(operation.id);
        continue;
      }
      if (stored) this.#unconfirmed.delete(operation.id);
      else if (!this.#layer.has(operation.id)) this.#unconfirmed.set(operation.id, now);
      fresh.push(operation);
    }
    this.#touch(fresh);
    if (this.#unconfirmed.size > 0) this.#confirmLater();
    if (again.length > 0) void this.#showIfStored(again);
  }

  /** Shows the outbox's records of these ids, those that are there and not removed meanwhile. */
  async #showIfStored(ids: readonly string[]): Promise<void> {
    const removed = this.#watch();
    try {
      const held = await (await this.#host.store()).operationsByIds(ids);
      const back = held.filter((operation) => !removed.has(operation.id) && !this.#layer.has(operation.id));
      for (const { id } of back) this.#gone.delete(id);
      this.#touch(back);
    } catch {
      // Not readable now: the next resync shows what the outbox holds.
    } finally {
      this.#watchers.delete(removed);
    }
  }

  #confirmLater(): void {
    if (this.#confirming !== undefined || this.#closed) return;
    this.#confirming = setTimeout(() => {
      this.#confirming = undefined;
      void this.#confirm();
    }, UNCONFIRMED_MS);
  }

  /** Other tabs' operations announced long ago and never stored leave, unless the outbox holds them. */
  async #confirm(): Promise<void> {
    const due = [...this.#unconfirmed].filter(([, since]) => Date.now() - since >= UNCONFIRMED_MS).map(([id]) => id);
    if (due.length > 0) {
      try {
        const held = await (await this.#host.store()).storedOperationIds(due);
        for (const id of due) this.#unconfirmed.delete(id);
        this.remove(due.filter((id) => !held.has(id)));
      } catch {
        // Not readable now: try again later.
      }
    }
    if (this.#unconfirmed.size > 0) this.#confirmLater();
  }

  /** The server acknowledged `id`; `settled` when its record is gone already. */
  acknowledged(id: string, settled: boolean): void {
    if (settled) this.remove([id]);
    else this.#live.layerChanged(this.#layer.acknowledge(id));
  }

  /** Operations that leave the layer: settled, refused, or cleared. */
  remove(ids: readonly string[]): void {
    if (ids.length === 0) return;
    for (const watcher of this.#watchers) for (const id of ids) watcher.add(id);
    this.#forget(ids);
    this.#live.layerChanged(this.#layer.remove(ids));
  }

  // ---- the server's state -------------------------------------------------------------------------

  /**
   * One batch the worker committed (in segment `segment`); `settled` operations left the outbox in
   * the same commit.
   */
  committed(changes: readonly Change[], lsn: LSN | undefined, settled: readonly string[] = [], segment?: number): void {
    if (lsn !== undefined) this.#heard = lsn;
    if (segment !== undefined) this.#recent.apply(changes, lsn, segment);
    for (const watcher of this.#watchers) for (const id of settled) watcher.add(id);
    this.#forget(settled);
    const touched = this.#layer.remove(settled);
    // Both before anyone hears: the queries call their listeners once, after this task's changes.
    if (changes.length > 0) this.#live.serverChanges(changes, lsn);
    this.#live.layerChanged(touched);
  }

  /**
   * The store was emptied (`reset`); the layer stays, and what the old log acknowledged is
   * unacknowledged again (it is sent again).
   */
  reset(): void {
    this.#heard = undefined;
    this.#recent.clear();
    this.#live.reset();
    this.#live.layerChanged(this.#layer.unacknowledgeAll());
  }

  /**
   * The worker holding the connection starts (this tab now leads, or its worker was restarted) at
   * resume point `lsn`. If this view heard of another, commits were made it never heard of (the
   * leader's tab closed between a commit and its event): it reads the store again.
   */
  resumesAt(lsn: LSN): void {
    if (this.#loaded === undefined || this.#heard === lsn) return;
    void this.resync();
  }

  /**
   * Reads the outbox and every observed type again: for a store this view may have missed commits
   * of, or one that was replaced (deleted and opened again under the page). What differs is told.
   */
  async resync(): Promise<void> {
    if (this.#loaded === undefined || this.#closed) return;
    this.#heard = undefined;
    // The store may be another one now (deleted and opened again): its segments count from 1.
    this.#recent.clear();
    try {
      await this.#readOutbox();
    } catch (error) {
      this.#host.report(error, 'storage');
    }
    await this.#live.refresh();
  }

  // ---- reads --------------------------------------------------------------------------------------

  /** Segments up to `through` are in `entities` now. */
  folded(through: number): void {
    this.#recent.folded(through);
  }

  /** One entity as this client sees it; see `WorkerSyncService.getEntity`. */
  async entity(entityType: string, entityId: string): Promise<SyncEntity | undefined> {
    await this.#ready();
    const { entity, foldedThrough } = await (await this.#host.store()).entityAt(entityType, entityId);
    const recent = this.#recent.get(entityType, entityId, foldedThrough);
    return this.#layer.overlay(entityType, entityId, recent ? recent.record : entity);
  }

  /** Every entity of one type as this client sees it, by entity id. */
  async entities(entityType: string): Promise<SyncEntity[]> {
    await this.#ready();
    const { entities, foldedThrough } = await (await this.#host.store()).typeSnapshot(entityType);
    const bases: SyncEntity[] = this.#recent.merge(entityType, entities, foldedThrough);
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
    clearTimeout(this.#confirming);
    this.#confirming = undefined;
    this.#live.close();
  }

  /** Remembers ids that left, a bounded number of them. */
  #forget(ids: readonly string[]): void {
    for (const id of ids) {
      this.#unconfirmed.delete(id);
      this.#gone.delete(id);
      this.#gone.add(id);
    }
    while (this.#gone.size > GONE_REMEMBERED) this.#gone.delete(this.#gone.values().next().value as string);
  }

  #touch(operations: readonly QueuedOperation[]): void {
    for (const operation of operations) this.#live.layerChanged(this.#layer.add(operation));
  }
}
