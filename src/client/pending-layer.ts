/**
 * The optimistic layer: every operation the outbox has not settled yet, with its effects, in the
 * order the outbox sends them. What a page reads is the server's value with this layer applied on
 * top (`overlay`). The layer holds intents, never computed rows, so a server change under a pending
 * patch keeps both.
 */
import type { StoredEntity } from '../db/schema.ts';
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
  acknowledged: boolean;
}

/** The order the outbox sends in: higher priority first, then first queued; the id breaks ties between tabs. */
function sendOrder(a: LayerOperation, b: LayerOperation): number {
  return b.priority - a.priority || a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export class PendingLayer {
  readonly #operations = new Map<string, LayerOperation>();
  /** entityType -> entityId -> the operations touching it, in send order. */
  readonly #byEntity = new Map<string, Map<string, LayerOperation[]>>();

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
      acknowledged: false,
    };
    this.#operations.set(operation.id, operation);
    for (const { entityType, entityId } of operation.entities) {
      let ids = this.#byEntity.get(entityType);
      if (!ids) this.#byEntity.set(entityType, (ids = new Map()));
      const list = ids.get(entityId);
      if (!list) {
        ids.set(entityId, [operation]);
        continue;
      }
      let at = list.length;
      while (at > 0 && sendOrder(list[at - 1]!, operation) > 0) at -= 1;
      list.splice(at, 0, operation);
    }
    return operation.entities;
  }

  /**
   * The server acknowledged the operation; it stays in the layer (until the stored state covers
   * it) but no longer makes its entities pending. Returns the entities it touches.
   */
  acknowledge(id: string): readonly EntityRef[] {
    const operation = this.#operations.get(id);
    if (!operation || operation.acknowledged) return [];
    operation.acknowledged = true;
    return operation.entities;
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
      if (!operation.acknowledged) pending = true;
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
}
