/**
 * What an operation does to the entities it touches, as far as the client can tell before the
 * server answers (docs/protocol.md "Operation types"). `upsert`, `patch` and `delete` operations
 * have one effect each, described by their payload; another type has the effects it declared when
 * it was queued, or none.
 */
import { applyMergePatch, isPlainObject } from './merge-patch.ts';

export interface EntityRef {
  entityType: string;
  entityId: string;
}

export type Effect =
  /** The entity's whole new value is `data`. */
  | { type: 'upsert'; entityType: string; entityId: string; data: unknown }
  /** `data` is an RFC 7386 merge patch over the entity's value (an absent entity counts as `{}`). */
  | { type: 'patch'; entityType: string; entityId: string; data: Record<string, unknown> }
  /** The entity is removed. */
  | { type: 'delete'; entityType: string; entityId: string };

export type EffectType = Effect['type'];

/** The operation types whose payload is their one effect. */
export const ENTITY_OPERATION_TYPES: readonly EffectType[] = Object.freeze(['upsert', 'patch', 'delete']);

export function isEntityOperationType(type: string): type is EffectType {
  return (ENTITY_OPERATION_TYPES as readonly string[]).includes(type);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/**
 * Checks an effect of type `type` described by `value` (`{ entityType, entityId, data? }`, the
 * payload of an `upsert`, `patch` or `delete` operation). Returns the typed effect, or why it is
 * not one.
 */
export function parseEffect(type: unknown, value: unknown): Effect | string {
  if (typeof type !== 'string' || !isEntityOperationType(type)) {
    return `an effect's type must be one of ${ENTITY_OPERATION_TYPES.join(', ')}, not ${JSON.stringify(type)}`;
  }
  if (!isPlainObject(value)) return `a ${type} needs an object { entityType, entityId${type === 'delete' ? '' : ', data'} }`;
  const { entityType, entityId, data } = value;
  if (!nonEmptyString(entityType)) return `a ${type} needs a non-empty string entityType`;
  if (!nonEmptyString(entityId)) return `a ${type} needs a non-empty string entityId`;
  switch (type) {
    case 'delete':
      return { type, entityType, entityId };
    case 'upsert':
      if (data === undefined) return 'an upsert needs data: the whole new value';
      return { type, entityType, entityId, data };
    case 'patch':
      if (!isPlainObject(data)) return 'a patch needs data that is an object: an RFC 7386 merge patch';
      return { type, entityType, entityId, data };
  }
}

/** An operation as far as its effects go: its type, its payload and the effects it declared. */
export interface EffectSource {
  type: string;
  payload: unknown;
  effects?: readonly Effect[] | undefined;
}

/**
 * The effects of an operation, in order: the one its payload describes for `upsert`, `patch` and
 * `delete`, else the effects it declared, else none. A payload that is not a valid effect has
 * none (the server will refuse it).
 */
export function effectsOf(operation: EffectSource): readonly Effect[] {
  if (isEntityOperationType(operation.type)) {
    const effect = parseEffect(operation.type, operation.payload);
    return typeof effect === 'string' ? [] : [effect];
  }
  return operation.effects ?? [];
}

/** The entities named (by effects or references), each once, in the order first named. */
export function entitiesOf(named: readonly EntityRef[]): EntityRef[] {
  const seen = new Map<string, Map<string, EntityRef>>();
  const refs: EntityRef[] = [];
  for (const { entityType, entityId } of named) {
    let ids = seen.get(entityType);
    if (!ids) seen.set(entityType, (ids = new Map()));
    if (ids.has(entityId)) continue;
    const ref = { entityType, entityId };
    ids.set(entityId, ref);
    refs.push(ref);
  }
  return refs;
}

/**
 * The value of an entity after `effect`, given its value before; `undefined` stands for an absent
 * entity both ways. The effect must target this entity.
 */
export function applyEffect(value: unknown, effect: Effect): unknown {
  switch (effect.type) {
    case 'upsert':
      return effect.data;
    case 'patch':
      return applyMergePatch(value, effect.data);
    case 'delete':
      return undefined;
  }
}
