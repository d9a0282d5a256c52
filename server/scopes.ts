import type { Change } from '../src/protocol/change.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { entityKey } from './edit.ts';
import { ALL_SCOPES } from './identity.ts';
import { StoreRefusedError } from './sync-store.ts';

/**
 * Names the scope an entity belongs to, from its value: who may see it is decided by the scopes
 * of each identity. Must be synchronous and depend on the entity alone (the store calls it when a
 * write is resolved, in its write order). Without one, every entity is in the scope `''`.
 */
export type ScopeOf = (entity: { entityType: string; entityId: string; data: unknown }) => string;

/**
 * The scope of one change (for a delete: the scope the entity was in), and the scope its entity
 * was in before when that was another one (a move).
 */
export interface ChangeScope {
  scope: string;
  before?: string;
}

/** The scope of every entity when there is no `scopeOf`. */
export const DEFAULT_SCOPE = '';

/** Most UTF-8 bytes of a scope name (it is a key in the stores' indexes). */
export const MAX_SCOPE_BYTES = 1024;

/** A write that `scopeOf` or the writer's scopes do not let the store take: nothing is stored. */
export class ScopeRefusal extends StoreRefusedError {}

/** How a store that keeps a refusal as text marks one of scopes, so that it reads back as a {@link ScopeRefusal}. */
const SCOPE_REFUSAL_MARK = 'scope refusal: ';

export function refusalText(error: StoreRefusedError): string {
  return error instanceof ScopeRefusal ? `${SCOPE_REFUSAL_MARK}${error.message}` : error.message;
}

/** The error a refusal kept as text stands for. */
export function refusalFrom(text: string): StoreRefusedError {
  return text.startsWith(SCOPE_REFUSAL_MARK) ? new ScopeRefusal(text.slice(SCOPE_REFUSAL_MARK.length)) : new StoreRefusedError(text);
}

/**
 * The scopes of `changes` (already resolved: whole values), in order. `current` gives an entity's
 * scope before this write (undefined: it does not exist). With `allowed` (the writer's scopes), a
 * change to an entity in, or into, a scope outside them is refused. Throws {@link ScopeRefusal}.
 */
export function scopeChanges(
  changes: readonly Change[],
  current: (key: string) => string | undefined,
  scopeOf: ScopeOf | undefined,
  allowed?: readonly string[],
): ChangeScope[] {
  const may = allowed === undefined || allowed.includes(ALL_SCOPES) ? undefined : new Set(allowed);
  const written = new Map<string, string | undefined>();
  return changes.map((change) => {
    const key = entityKey(change.entityType, change.entityId);
    const before = written.has(key) ? written.get(key) : current(key);
    const scope = change.type === 'delete' ? before ?? DEFAULT_SCOPE : scopeFor(change, scopeOf);
    if (may && ((before !== undefined && !may.has(before)) || (change.type === 'update' && !may.has(scope)))) {
      throw new ScopeRefusal(`not allowed: ${change.entityType} ${JSON.stringify(change.entityId)} is, or would be, in a scope this identity may not write`);
    }
    written.set(key, change.type === 'delete' ? undefined : scope);
    return before !== undefined && before !== scope ? { scope, before } : { scope };
  });
}

function scopeFor(change: Change & { type: 'update' }, scopeOf: ScopeOf | undefined): string {
  if (!scopeOf) return DEFAULT_SCOPE;
  let scope: unknown;
  try {
    scope = scopeOf({ entityType: change.entityType, entityId: change.entityId, data: change.data });
  } catch (error) {
    const message = `scopeOf failed for ${change.entityType} ${JSON.stringify(change.entityId)}: ${errorMessage(error)}`;
    process.emitWarning(`sync server: ${message}`);
    throw new ScopeRefusal(`operation refused: ${message}`);
  }
  if (typeof scope !== 'string' || Buffer.byteLength(scope) > MAX_SCOPE_BYTES || scope === ALL_SCOPES) {
    const message = `scopeOf returned ${typeof scope === 'string' ? `an invalid scope name (${JSON.stringify(scope.slice(0, 40))})` : `a ${typeof scope}, not a scope name`}`;
    process.emitWarning(`sync server: ${message}`);
    throw new ScopeRefusal(`operation refused: ${message}`);
  }
  return scope;
}

/** Every scope a record's changes touch (their scopes and the scopes they moved out of), each once. */
export function touchedScopes(scopes: readonly ChangeScope[] | undefined): string[] {
  if (!scopes || scopes.length === 0) return [DEFAULT_SCOPE];
  const touched = new Set<string>();
  for (const { scope, before } of scopes) {
    touched.add(scope);
    if (before !== undefined) touched.add(before);
  }
  return [...touched];
}

/**
 * What a reader who sees the scopes `sees` gets of a record's changes: those in its scopes as they
 * are, and a `delete` for each entity that moved out of them; nothing else.
 */
export function visibleChanges(changes: readonly Change[], scopes: readonly ChangeScope[] | undefined, sees: (scope: string) => boolean): Change[] {
  const visible: Change[] = [];
  for (const [index, change] of changes.entries()) {
    const { scope, before } = scopes?.[index] ?? { scope: DEFAULT_SCOPE };
    if (sees(scope)) {
      visible.push(change);
    } else if (before !== undefined && sees(before)) {
      const moved: Change = { type: 'delete', entityType: change.entityType, entityId: change.entityId };
      if (change.timestamp !== undefined) moved.timestamp = change.timestamp;
      visible.push(moved);
    }
  }
  return visible;
}
