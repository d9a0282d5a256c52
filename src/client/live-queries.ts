/**
 * Every live query of one client, grouped by entity type. Each observed type keeps the server's
 * records of that type in memory (read once from the local store, then moved by the committed
 * changes the worker reports) and the pending layer's view over them; a change reaches only the
 * queries of its own type, and nothing re-reads a whole type because one entity changed.
 */
import type { StoredEntity } from '../db/schema.ts';
import { storedEntity } from '../db/records.ts';
import type { Change } from '../protocol/change.ts';
import type { EntityRef } from '../protocol/effects.ts';
import type { LSN } from '../protocol/lsn.ts';
import { LiveQuery, type EntityDelta, type ObserveListener, type ObserveOptions } from './live-query.ts';
import type { PendingLayer, SyncEntity } from './pending-layer.ts';

export interface LiveQuerySource {
  /**
   * The server's records of one type, as the store holds them with every commit this page has
   * heard of: the commits heard while it reads need not be applied again.
   */
  load(entityType: string): Promise<StoredEntity[]>;
  readonly layer: PendingLayer;
  /** A filter, sort or listener threw (`observer`), or a type could not be read (`storage`). */
  report(error: unknown, code: 'observer' | 'storage'): void;
}


/** Two records a reader cannot tell apart: the same entity, value, position and pending mark. */
export function sameRecord(a: SyncEntity, b: SyncEntity): boolean {
  return a.entityType === b.entityType && a.entityId === b.entityId && a.lsn === b.lsn
    && a.timestamp === b.timestamp && a.pending === b.pending
    && (a.data === b.data || JSON.stringify(a.data) === JSON.stringify(b.data));
}

class LiveType {
  readonly #entityType: string;
  readonly #source: LiveQuerySource;
  /** The server's records, by entity id. */
  #base = new Map<string, StoredEntity>();
  /** The ids whose visible record differs from the base (the layer touches them); undefined = absent. */
  readonly #overrides = new Map<string, SyncEntity | undefined>();
  readonly queries = new Set<LiveQuery>();
  /** Set while the type is being read: whether the store was emptied meanwhile (a reset). */
  #resetWhileReading: boolean | undefined;
  #loaded = false;
  #closed = false;

  constructor(entityType: string, source: LiveQuerySource) {
    this.#entityType = entityType;
    this.#source = source;
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /**
   * Reads the type; the first time, every query waiting for it starts; later (a resync), what
   * differs from what was shown is told, and unchanged rows keep their objects. Rejects when the
   * store cannot be read.
   */
  async read(): Promise<void> {
    for (;;) {
      this.#resetWhileReading = false;
      const records = await this.#source.load(this.#entityType);
      if (this.#closed) return;
      const reset = this.#resetWhileReading;
      this.#resetWhileReading = undefined;
      // A reset while reading: the read may have seen either log; read again.
      if (reset) continue;
      this.#take(records);
      return;
    }
  }

  close(): void {
    this.#closed = true;
    this.#resetWhileReading = undefined;
  }

  #take(records: readonly StoredEntity[]): void {
    const before = this.#loaded ? new Map([...this.visible()].map((record) => [record.entityId, record])) : undefined;
    this.#base = new Map(records.map((record) => [record.entityId, record]));
    this.#overrides.clear();
    for (const id of this.#source.layer.touchedIds(this.#entityType)) this.#refresh(id);
    if (!before) {
      this.#loaded = true;
      for (const query of this.queries) query.start(this.visible());
      return;
    }
    const deltas: EntityDelta[] = [];
    for (const [id, record] of before) {
      const after = this.#keep(id, record);
      if (after !== record) deltas.push({ entityId: id, before: record, after });
    }
    for (const record of this.visible()) {
      if (!before.has(record.entityId)) deltas.push({ entityId: record.entityId, before: undefined, after: record });
    }
    this.#tell(deltas);
  }

  *visible(): Generator<SyncEntity> {
    for (const [id, record] of this.#base) if (!this.#overrides.has(id)) yield record;
    for (const record of this.#overrides.values()) if (record) yield record;
  }

  serverChanges(changes: readonly Change[], lsn: LSN | undefined): void {
    // While reading, the read brings every commit heard meanwhile.
    if (this.#resetWhileReading !== undefined || !this.#loaded) return;
    const deltas: EntityDelta[] = [];
    for (const change of changes) {
      const before = this.#visible(change.entityId);
      this.#applyToBase([change], lsn);
      const after = this.#refresh(change.entityId);
      if (before !== after) deltas.push({ entityId: change.entityId, before, after });
    }
    this.#tell(deltas);
  }

  layerChanged(ids: Iterable<string>): void {
    // The layer is read as it is when the read ends.
    if (this.#resetWhileReading !== undefined || !this.#loaded) return;
    const deltas: EntityDelta[] = [];
    for (const id of ids) {
      const before = this.#visible(id);
      const after = this.#refresh(id);
      if (before !== after) deltas.push({ entityId: id, before, after });
    }
    this.#tell(deltas);
  }

  /** The store was emptied (a `reset`): only what the layer adds stays visible. */
  reset(): void {
    if (this.#resetWhileReading !== undefined) {
      this.#resetWhileReading = true;
      return;
    }
    if (!this.#loaded) return;
    const ids = new Set([...this.#base.keys(), ...this.#overrides.keys()]);
    const before = new Map([...ids].map((id) => [id, this.#visible(id)]));
    this.#base.clear();
    const deltas: EntityDelta[] = [];
    for (const id of ids) {
      const after = this.#refresh(id);
      if (before.get(id) !== after) deltas.push({ entityId: id, before: before.get(id), after });
    }
    this.#tell(deltas);
  }

  #visible(id: string): SyncEntity | undefined {
    return this.#overrides.has(id) ? this.#overrides.get(id) : this.#base.get(id);
  }

  #applyToBase(changes: readonly Change[], lsn: LSN | undefined): void {
    for (const change of changes) {
      if (change.type === 'update') this.#base.set(change.entityId, storedEntity(change, lsn));
      else this.#base.delete(change.entityId);
    }
  }

  /**
   * Recomputes one id's visible record from its base and the layer; a record a reader could not
   * tell from the one shown keeps the shown object. Returns it.
   */
  #refresh(id: string): SyncEntity | undefined {
    return this.#keep(id, this.#visible(id));
  }

  /** {@link #refresh}, keeping `shown` when the new record equals it. */
  #keep(id: string, shown: SyncEntity | undefined): SyncEntity | undefined {
    const base = this.#base.get(id);
    let visible = this.#source.layer.overlay(this.#entityType, id, base);
    if (shown && visible && visible !== shown && sameRecord(shown, visible)) visible = shown;
    if (visible === base) this.#overrides.delete(id);
    else this.#overrides.set(id, visible);
    return visible;
  }

  #tell(deltas: readonly EntityDelta[]): void {
    if (deltas.length === 0) return;
    for (const query of this.queries) query.update(deltas);
  }
}

export class LiveQueries {
  readonly #source: LiveQuerySource;
  readonly #types = new Map<string, LiveType>();
  #closed = false;

  constructor(source: LiveQuerySource) {
    this.#source = source;
  }

  /** Live queries not yet unsubscribed. */
  get size(): number {
    let count = 0;
    for (const type of this.#types.values()) count += type.queries.size;
    return count;
  }

  /** The entity types with a live query, and so held in memory. */
  get types(): number {
    return this.#types.size;
  }

  /** Starts a query (arguments already checked); returns the function that stops it. */
  observe(entityType: string, listener: ObserveListener, options: ObserveOptions): () => void {
    if (this.#closed) return () => {};
    const report = (error: unknown): void => this.#source.report(error, 'observer');
    const query = new LiveQuery(options, listener, report);
    let type = this.#types.get(entityType);
    if (!type) {
      type = new LiveType(entityType, this.#source);
      this.#types.set(entityType, type);
      void this.#read(entityType, type);
    }
    type.queries.add(query);
    if (type.loaded) query.start(type.visible());
    const owner = type;
    return () => {
      query.close();
      owner.queries.delete(query);
      if (owner.queries.size === 0 && this.#types.get(entityType) === owner) {
        this.#types.delete(entityType);
        owner.close();
      }
    };
  }

  /** Changes the worker committed to the store (one batch), in order. */
  serverChanges(changes: readonly Change[], lsn: LSN | undefined): void {
    if (this.#types.size === 0) return;
    const byType = new Map<LiveType, Change[]>();
    for (const change of changes) {
      const type = this.#types.get(change.entityType);
      if (!type) continue;
      const list = byType.get(type);
      if (list) list.push(change);
      else byType.set(type, [change]);
    }
    for (const [type, list] of byType) type.serverChanges(list, lsn);
  }

  /** The pending layer changed for these entities (a write, an acknowledgement, a rollback, a clear). */
  layerChanged(entities: readonly EntityRef[]): void {
    if (this.#types.size === 0 || entities.length === 0) return;
    const byType = new Map<LiveType, string[]>();
    for (const { entityType, entityId } of entities) {
      const type = this.#types.get(entityType);
      if (!type) continue;
      const list = byType.get(type);
      if (list) list.push(entityId);
      else byType.set(type, [entityId]);
    }
    for (const [type, ids] of byType) type.layerChanged(ids);
  }

  /** The local store was emptied (the server sent `reset`). */
  reset(): void {
    for (const type of this.#types.values()) type.reset();
  }

  /**
   * Reads every observed type again (the store may hold commits this page never heard of): what
   * differs is told, unchanged rows keep their objects.
   */
  async refresh(): Promise<void> {
    await Promise.all([...this.#types].map(([entityType, type]) => this.#read(entityType, type)));
  }

  close(): void {
    this.#closed = true;
    for (const type of this.#types.values()) {
      type.close();
      for (const query of type.queries) query.close();
    }
    this.#types.clear();
  }

  async #read(entityType: string, type: LiveType): Promise<void> {
    try {
      await type.read();
    } catch (error) {
      if (type.loaded) {
        this.#source.report(error, 'storage'); // a refresh failed: what is shown stays
        return;
      }
      if (this.#types.get(entityType) === type) this.#types.delete(entityType);
      type.close();
      for (const query of type.queries) query.close();
      this.#source.report(error, 'storage');
    }
  }
}
