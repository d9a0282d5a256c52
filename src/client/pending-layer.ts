/**
 * The optimistic layer: every operation the outbox has not settled yet, with its effects, in the
 * order the outbox sends them. What a page reads is the server's value with this layer applied on
 * top (`overlay`). The layer holds intents, never computed rows, so a server change under a pending
 * patch keeps both.
 */
import { compareQueued, type StoredEntity } from '../db/schema.ts';
import { applyEffect, entitiesOf, type Effect, type EffectSource, effectsOf, type EntityRef } from '../protocol/effects.ts';

/** An entity as a page reads it: the server's value with the pending operations applied. */
export interface SyncEntity extends StoredEntity {
  /** Present while an operation the server has not acknowledged yet touches this entity. */
  pending?: true;
}

/** What the layer needs of an outbox record. */
export interface LayerOperationInput extends EffectSource {
  id: string;
  priority: number;
  seq: number;
}

interface LayerOperation {
  readonly id: string;
  readonly priority: number;
  readonly seq: number;
  readonly effects: readonly Effect[];
  readonly entities: readonly EntityRef[];
  /** The input it was added from: a removal of a write that was never stored names it. */
  readonly source: LayerOperationInput;
  /** Set when the server acknowledged it: the order of acknowledgements. */
  acknowledged: number | undefined;
}

/**
 * The order the server applies them in: acknowledged operations first, in the order they were
 * acknowledged (they were applied before anything sent since), then the others in the order the
 * outbox sends them.
 */
function applyOrder(a: LayerOperation, b: LayerOperation): number {
  if (a.acknowledged !== undefined || b.acknowledged !== undefined) {
    if (a.acknowledged === undefined) return 1;
    if (b.acknowledged === undefined) return -1;
    return a.acknowledged - b.acknowledged;
  }
  return compareQueued(a, b);
}

export class PendingLayer {
  readonly #operations = new Map<string, LayerOperation>();
  /** entityType -> entityId -> the operations touching it, in the order they apply. */
  readonly #byEntity = new Map<string, Map<string, LayerOperation[]>>();
  #acknowledgements = 0;

  get size(): number {
    return this.#operations.size;
  }

  has(id: string): boolean {
    return this.#operations.has(id);
  }

  /** The entities an operation in the layer touches; empty for an unknown id. */
  entitiesOf(id: string): readonly EntityRef[] {
    return this.#operations.get(id)?.entities ?? [];
  }

  /** Adds an operation; returns the entities it touches (none when it was already there). */
  add(input: LayerOperationInput): readonly EntityRef[] {
    if (this.#operations.has(input.id)) return [];
    const effects = effectsOf(input);
    const operation: LayerOperation = {
      id: input.id,
      priority: input.priority,
      seq: input.seq,
      effects,
      entities: entitiesOf(effects),
      source: input,
      acknowledged: undefined,
    };
    this.#operations.set(operation.id, operation);
    for (const { entityType, entityId } of operation.entities) {
      let ids = this.#byEntity.get(entityType);
      if (!ids) this.#byEntity.set(entityType, (ids = new Map()));
      const list = ids.get(entityId);
      if (list) place(list, operation);
      else ids.set(entityId, [operation]);
    }
    return operation.entities;
  }

  /**
   * The server acknowledged the operation; it stays in the layer (until the stored state covers
   * it) but no longer makes its entities pending. Returns the entities it touches.
   */
  acknowledge(id: string): readonly EntityRef[] {
    const operation = this.#operations.get(id);
    if (!operation || operation.acknowledged !== undefined) return [];
    operation.acknowledged = ++this.#acknowledgements;
    this.#reorder(operation);
    return operation.entities;
  }

  /**
   * Every acknowledgement is void (a `reset`: the log that acknowledged them is gone, and they are
   * sent again). Returns the entities of the operations that were acknowledged.
   */
  unacknowledgeAll(): EntityRef[] {
    const touched: EntityRef[] = [];
    for (const operation of this.#operations.values()) {
      if (operation.acknowledged === undefined) continue;
      operation.acknowledged = undefined;
      this.#reorder(operation);
      touched.push(...operation.entities);
    }
    return entitiesOf(touched);
  }

  /**
   * Removes the operation `source` added, if the layer still holds that one under its id (and not
   * another operation with the same id, e.g. one stored before); returns what it touched.
   */
  removeAdded(source: LayerOperationInput): EntityRef[] {
    return this.holds(source) ? this.remove([source.id]) : [];
  }

  /** True when the layer holds the operation `source` added (the same one, not only its id). */
  holds(source: LayerOperationInput): boolean {
    const held = this.#operations.get(source.id)?.source;
    return held === source || (held !== undefined && held.seq === source.seq && held.priority === source.priority && held.type === source.type);
  }

  /** The ids in the layer. */
  ids(): IterableIterator<string> {
    return this.#operations.keys();
  }

  /** Removes operations; returns the entities they touched, each once. */
  remove(ids: Iterable<string>): EntityRef[] {
    const touched: EntityRef[] = [];
    for (const id of ids) {
      const operation = this.#operations.get(id);
      if (!operation) continue;
      this.#operations.delete(id);
      for (const ref of operation.entities) {
        const entityIds = this.#byEntity.get(ref.entityType);
        const list = entityIds?.get(ref.entityId);
        if (!entityIds || !list) continue;
        const at = list.indexOf(operation);
        if (at >= 0) list.splice(at, 1);
        if (list.length === 0) {
          entityIds.delete(ref.entityId);
          if (entityIds.size === 0) this.#byEntity.delete(ref.entityType);
        }
        touched.push(ref);
      }
    }
    return entitiesOf(touched);
  }

  /** Removes every operation; returns the ids removed and the entities they touched. */
  clear(): { ids: string[]; entities: EntityRef[] } {
    const ids = [...this.#operations.keys()];
    return { ids, entities: this.remove(ids) };
  }

  /** The ids of the entities of `entityType` that some operation touches. */
  touchedIds(entityType: string): Iterable<string> {
    return this.#byEntity.get(entityType)?.keys() ?? [];
  }

  /**
   * What a page reads for one entity: `base` (the server's value, or undefined when the server has
   * none) with every operation touching it applied in send order. Returns `base` itself when no
   * operation touches it, and undefined when the result is absent.
   */
  overlay(entityType: string, entityId: string, base: StoredEntity | undefined): SyncEntity | undefined {
    const operations = this.#byEntity.get(entityType)?.get(entityId);
    if (!operations) return base;
    let data: unknown = base?.data;
    let pending = false;
    for (const operation of operations) {
      if (operation.acknowledged === undefined) pending = true;
      for (const effect of operation.effects) {
        if (effect.entityType === entityType && effect.entityId === entityId) data = applyEffect(data, effect);
      }
    }
    if (data === undefined) return undefined;
    const entity: SyncEntity = { entityType, entityId, data };
    if (base?.timestamp !== undefined) entity.timestamp = base.timestamp;
    if (base?.lsn !== undefined) entity.lsn = base.lsn;
    if (pending) entity.pending = true;
    return entity;
  }

  /** Puts the operation back in its place in every list it is in, after its order changed. */
  #reorder(operation: LayerOperation): void {
    for (const { entityType, entityId } of operation.entities) {
      const list = this.#byEntity.get(entityType)?.get(entityId);
      if (!list) continue;
      list.splice(list.indexOf(operation), 1);
      place(list, operation);
    }
  }
}

/** Inserts `operation` where it applies among the others. */
function place(list: LayerOperation[], operation: LayerOperation): void {
  let at = list.length;
  while (at > 0 && applyOrder(list[at - 1]!, operation) > 0) at -= 1;
  list.splice(at, 0, operation);
}
