import { isRecord, parseChange, type Change } from '../src/protocol/change.ts';
import { applyMergePatch, isPlainObject } from '../src/protocol/merge-patch.ts';

/**
 * A merge patch (RFC 7386) of one entity, as a writer asks for it. The store resolves it against
 * the entity's value in its own write order and records the `update` with the whole merged value.
 */
export interface PatchEdit {
  type: 'patch';
  entityType: string;
  entityId: string;
  patch: Record<string, unknown>;
  timestamp?: number;
}

/** What a write asks the store to do to one entity: a whole value, a delete, or a merge patch. */
export type Edit = Change | PatchEdit;

/** Checks one untrusted edit item (a change, or `{ type: 'patch', ..., patch }`); returns why it is invalid. */
export function parseEdit(item: unknown): Edit | string {
  if (!isRecord(item) || item.type !== 'patch') return parseChange(item);
  const { entityType, entityId, patch, timestamp } = item;
  const target = parseChange({ type: 'delete', entityType, entityId, timestamp });
  if (typeof target === 'string') return target;
  if (!isPlainObject(patch)) return 'patch must be an object';
  return { ...target, type: 'patch', patch };
}

/** The change an edit makes to an entity whose value is `current` (undefined: absent). */
export function resolveEdit(edit: Edit, current: unknown): Change {
  if (edit.type !== 'patch') return edit;
  const { patch, ...target } = edit;
  return { ...target, type: 'update', data: applyMergePatch(current ?? {}, patch) };
}

/**
 * The changes `edits` make, in order, reading each entity's value through `valueOf` (the value
 * before these edits) and through the earlier edits of the same list.
 */
export function resolveEdits(edits: readonly Edit[], valueOf: (entityType: string, entityId: string) => unknown): Change[] {
  const written = new Map<string, { value: unknown }>();
  return edits.map((edit) => {
    const key = entityKey(edit.entityType, edit.entityId);
    const earlier = written.get(key);
    const change = resolveEdit(edit, earlier ? earlier.value : valueOf(edit.entityType, edit.entityId));
    written.set(key, { value: change.type === 'delete' ? undefined : change.data });
    return change;
  });
}

/** One entity's key: distinct for distinct (type, id) pairs, whatever characters they hold (the type's length comes first). */
export function entityKey(entityType: string, entityId: string): string {
  return `${entityType.length}:${entityType}${entityId}`;
}
