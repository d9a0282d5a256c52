/**
 * The outbox as records of groups: operations stored together share one record (see
 * `StoredGroup`). These read and write groups inside a transaction someone else holds, so that
 * the worker's commit can delete what it settles in the same transaction as its changes.
 */
import type { PromisedStore } from './indexed-db.ts';
import type { QueuedOperation } from '../protocol/state.ts';
import type { StoredGroup, SyncDBSchema } from './schema.ts';

/** At most this many operations share a record, so that taking one out rewrites a bounded one. */
export const GROUP_SIZE = 256;

type OutboxStore = PromisedStore<SyncDBSchema, 'outbox'>;

/** An operation to take out of the outbox: its id, and its record's key when known. */
export type OutboxEntry = Pick<QueuedOperation, 'id' | 'group'>;

const ignore = (): void => {};

/**
 * Adds operations as records of up to {@link GROUP_SIZE}; once the adds succeed, each operation
 * knows its record (`group`). An id already queued makes the transaction fail (`ConstraintError`).
 */
export async function addGroups(store: OutboxStore, operations: readonly QueuedOperation[]): Promise<void> {
  const adds: Promise<void>[] = [];
  for (let at = 0; at < operations.length; at += GROUP_SIZE) {
    const members = operations.slice(at, at + GROUP_SIZE).map(({ group: _, ...operation }) => operation);
    adds.push(store.add({ ids: members.map(({ id }) => id), operations: members }).then((key) => {
      for (let i = at; i < at + members.length; i += 1) operations[i]!.group = key;
    }));
  }
  await Promise.all(adds);
}

/** Every queued operation, in the order of their records, each knowing its record. */
export async function allOperations(store: OutboxStore): Promise<QueuedOperation[]> {
  const [keys, groups] = await Promise.all([store.getAllKeys(), store.getAll()]);
  return groups.flatMap((group, at) => group.operations.map((operation) => ({ ...operation, group: keys[at]! })));
}

/**
 * Takes `entries` out of their records: a record left empty is deleted, another rewritten
 * without them. An entry whose record is unknown is looked up by id; one not queued is skipped.
 */
export async function removeFromGroups(store: OutboxStore, entries: readonly OutboxEntry[]): Promise<void> {
  const byGroup = new Map<number, Set<string>>();
  const take = (key: number | undefined, id: string): void => {
    if (key === undefined) return;
    let ids = byGroup.get(key);
    if (!ids) byGroup.set(key, (ids = new Set()));
    ids.add(id);
  };
  const unknown = entries.filter(({ group }) => group === undefined);
  const found = await Promise.all(unknown.map(({ id }) => store.index('byId').getKey(id)));
  unknown.forEach(({ id }, at) => take(found[at], id));
  for (const { id, group } of entries) take(group, id);
  await Promise.all([...byGroup].map(async ([key, ids]) => {
    const group = await store.get(key);
    if (group) keepOnly(store, key, group, (id) => !ids.has(id));
  }));
}

/**
 * Rewrites the record `key` (holding `group`) with only the operations whose ids pass `keep`,
 * deleting it when none do; answers the ids taken out.
 */
export function keepOnly(store: OutboxStore, key: number, group: StoredGroup, keep: (id: string) => boolean): string[] {
  const operations = group.operations.filter(({ id }) => keep(id));
  if (operations.length === group.ids.length) return [];
  if (operations.length === 0) store.delete(key).catch(ignore);
  else store.put({ ids: operations.map(({ id }) => id), operations }, key).catch(ignore);
  return group.ids.filter((id) => !keep(id));
}
