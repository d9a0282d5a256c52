/**
 * The local store as the page and the worker both use it: the only code that reads or writes the
 * `outbox`, and the one place the stored client id and resume point are read at start. The
 * worker's change store writes `entities` and the resume point with each batch (worker/change-store.ts).
 */
import type { LSN } from '../protocol/lsn.ts';
import type { QueuedOperation } from '../protocol/state.ts';
import type { PromisedStore } from './indexed-db.ts';
import { addGroups, allOperations, keepOnly, removeFromGroups, type OutboxEntry } from './outbox-groups.ts';
import { openSyncDB, type OpenOptions, type StoredEntity, type StoredSegment, type SyncDB, type SyncDBSchema } from './schema.ts';

/** What is stored for one client when it starts. */
export interface StartState {
  clientId: string;
  /** The resume point, `undefined` before the first batch. */
  lastLSN: LSN | undefined;
  /** Operations in the outbox. */
  pending: number;
}

const ignore = (): void => {};

function segmentKey(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : 0;
}

function storedLSN(value: unknown): LSN | undefined {
  return typeof value === 'string' ? value : undefined;
}

function storedClientId(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** `configured` when non-empty, else the stored id, else a new random id stored now. */
async function resolveClientId(meta: PromisedStore<SyncDBSchema, 'meta'>, configured: string): Promise<string> {
  if (configured.length > 0) return configured;
  const stored = storedClientId(await meta.get('clientId'));
  if (stored !== undefined) return stored;
  const created = crypto.randomUUID();
  meta.put(created, 'clientId').catch(ignore);
  return created;
}

export class LocalStore {
  /** Opens (creating or upgrading) the database `name`. */
  static async open(name: string, options: OpenOptions = {}): Promise<LocalStore> {
    return new LocalStore(await openSyncDB(name, options));
  }

  /** The connection, for the worker's change store. */
  readonly db: SyncDB;

  constructor(db: SyncDB) {
    this.db = db;
  }

  close(): void {
    this.db.close();
  }

  // ---- entities (read) ---------------------------------------------------------------------------

  // Reads await their transaction's `done` too: every transaction makes that promise (indexed-db.ts), and
  // one nobody awaits rejects unhandled when the transaction aborts.

  async entity(entityType: string, entityId: string): Promise<StoredEntity | undefined> {
    const tx = this.db.transaction('entities', 'readonly');
    const [entity] = await Promise.all([tx.store.get([entityType, entityId]), tx.done]);
    return entity;
  }

  async entities(entityType: string): Promise<StoredEntity[]> {
    const tx = this.db.transaction('entities', 'readonly');
    const [entities] = await Promise.all([tx.store.index('byType').getAll(entityType), tx.done]);
    return entities;
  }

  /**
   * One folded entity and the last segment folded into `entities`, read in one transaction: the
   * segments after it hold what is newer.
   */
  async entityAt(entityType: string, entityId: string): Promise<{ entity: StoredEntity | undefined; foldedThrough: number }> {
    const tx = this.db.transaction(['entities', 'meta'], 'readonly');
    const [entity, folded] = await Promise.all([
      tx.objectStore('entities').get([entityType, entityId]),
      tx.objectStore('meta').get('foldedThrough'),
      tx.done,
    ]);
    return { entity, foldedThrough: segmentKey(folded) };
  }

  /** Every folded entity of one type and the last segment folded, read in one transaction. */
  async typeSnapshot(entityType: string): Promise<{ entities: StoredEntity[]; foldedThrough: number }> {
    const tx = this.db.transaction(['entities', 'meta'], 'readonly');
    const [entities, folded] = await Promise.all([
      tx.objectStore('entities').index('byType').getAll(entityType),
      tx.objectStore('meta').get('foldedThrough'),
      tx.done,
    ]);
    return { entities, foldedThrough: segmentKey(folded) };
  }

  /**
   * What is written and not folded yet: the outbox and the segments, read in one transaction, so
   * that a commit that settled an operation and stored its effect is seen whole or not at all.
   */
  async unfolded(): Promise<{ operations: QueuedOperation[]; segments: [number, StoredSegment][]; foldedThrough: number }> {
    const tx = this.db.transaction(['outbox', 'segments', 'meta'], 'readonly');
    const segmentStore = tx.objectStore('segments');
    const [operations, keys, values, folded] = await Promise.all([
      allOperations(tx.objectStore('outbox')),
      segmentStore.getAllKeys(),
      segmentStore.getAll(),
      tx.objectStore('meta').get('foldedThrough'),
      tx.done,
    ]);
    return { operations, segments: keys.map((key, at) => [key, values[at]!]), foldedThrough: segmentKey(folded) };
  }

  // ---- the outbox --------------------------------------------------------------------------------

  /**
   * Stores operations in one transaction with strict durability, as few records: all of them or,
   * when one fails (an id already queued: `ConstraintError`), none. Each then knows its record.
   */
  async addOperations(operations: readonly QueuedOperation[]): Promise<void> {
    const tx = this.db.transaction('outbox', 'readwrite', { durability: 'strict' });
    await Promise.all([addGroups(tx.store, operations), tx.done]);
  }

  /** Every operation in the outbox. */
  async operations(): Promise<QueuedOperation[]> {
    const tx = this.db.transaction('outbox', 'readonly');
    const [operations] = await Promise.all([allOperations(tx.store), tx.done]);
    return operations;
  }

  /** The records of those of `ids` that are in the outbox now. */
  async operationsByIds(ids: readonly string[]): Promise<QueuedOperation[]> {
    const tx = this.db.transaction('outbox', 'readonly');
    const byId = tx.store.index('byId');
    const [groups] = await Promise.all([Promise.all(ids.map((id) => byId.get(id))), tx.done]);
    return ids.flatMap((id, at) => groups[at]?.operations.filter((operation) => operation.id === id) ?? []);
  }

  /** Which of `ids` have a record in the outbox now. */
  async storedOperationIds(ids: readonly string[]): Promise<Set<string>> {
    const tx = this.db.transaction('outbox', 'readonly');
    const byId = tx.store.index('byId');
    const [keys] = await Promise.all([Promise.all(ids.map((id) => byId.getKey(id))), tx.done]);
    return new Set(ids.filter((_, at) => keys[at] !== undefined));
  }

  /** Deletes answered operations from their records. Relaxed: a lost delete only means a re-send. */
  async deleteOperations(entries: readonly OutboxEntry[]): Promise<void> {
    const tx = this.db.transaction('outbox', 'readwrite', { durability: 'relaxed' });
    await Promise.all([removeFromGroups(tx.store, entries), tx.done]);
  }

  /**
   * Empties the outbox, but for the operations in `keep` (acknowledged by the server, whose
   * effects must show until the store does); answers the ids removed.
   */
  async clearOperations(keep: ReadonlySet<string> = new Set()): Promise<string[]> {
    const tx = this.db.transaction('outbox', 'readwrite');
    const done = tx.done;
    done.catch(ignore); // awaited below, unless a read fails first
    const [keys, groups] = await Promise.all([tx.store.getAllKeys(), tx.store.getAll()]);
    const removed = groups.flatMap((group, at) => keepOnly(tx.store, keys[at]!, group, (id) => keep.has(id)));
    await done;
    return removed;
  }

  async countOperations(): Promise<number> {
    const tx = this.db.transaction('outbox', 'readonly');
    const [count] = await Promise.all([tx.store.index('byId').count(), tx.done]);
    return count;
  }

  // ---- the client's progress --------------------------------------------------------------------

  /**
   * The client id to use (`configured` when non-empty, else the stored one, else a new random id
   * stored now), the resume point and the number of queued operations, in one transaction, so
   * that two tabs starting together agree on the id.
   */
  async startState(configured: string): Promise<StartState> {
    const tx = this.db.transaction(['meta', 'outbox'], 'readwrite');
    const meta = tx.objectStore('meta');
    const [clientId, lastLSN, pending] = await Promise.all([
      resolveClientId(meta, configured),
      meta.get('lastLSN'),
      tx.objectStore('outbox').index('byId').count(),
      tx.done,
    ]);
    return { clientId, lastLSN: storedLSN(lastLSN), pending };
  }

  /** The client id alone, resolved as {@link startState} does. */
  async clientId(configured: string): Promise<string> {
    if (configured.length > 0) return configured;
    const tx = this.db.transaction('meta', 'readwrite');
    const [clientId] = await Promise.all([resolveClientId(tx.store, configured), tx.done]);
    return clientId;
  }

  /**
   * Writes a client id and a resume point carried over from an older client, each only where the
   * database has none yet, in one readwrite transaction. Answers what is stored afterwards and
   * which of the two were written.
   */
  async seedProgress(
    seed: { clientId?: string; lastLSN?: LSN },
  ): Promise<{ clientId: string | undefined; lastLSN: LSN | undefined; wrote: ('clientId' | 'lastLSN')[] }> {
    const tx = this.db.transaction('meta', 'readwrite');
    const [storedId, stored] = await Promise.all([tx.store.get('clientId'), tx.store.get('lastLSN')]);
    let clientId = storedClientId(storedId);
    let lastLSN = storedLSN(stored);
    const wrote: ('clientId' | 'lastLSN')[] = [];
    if (clientId === undefined && seed.clientId) {
      clientId = seed.clientId;
      tx.store.put(clientId, 'clientId').catch(ignore);
      wrote.push('clientId');
    }
    if (lastLSN === undefined && seed.lastLSN !== undefined) {
      lastLSN = seed.lastLSN;
      tx.store.put(lastLSN, 'lastLSN').catch(ignore);
      // An older client's LSN describes the app's own database, where that client wrote; a
      // built-in store (empty) that finds it starts from 0/0 instead.
      tx.store.put('page', 'lsnStore').catch(ignore);
      wrote.push('lastLSN');
    }
    await tx.done;
    return { clientId, lastLSN, wrote };
  }
}
