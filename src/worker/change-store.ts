/**
 * Applies the server's changes to the `entities` store together with the resume point
 * (`meta.lastLSN`), one batch per readwrite transaction (docs/protocol.md "Guarantees").
 */
import type { Change } from '../protocol/change.ts';
import { compareLSN, isLSN, normalizeLSN, ZERO_LSN, type LSN } from '../protocol/lsn.ts';
import type { ResumeStore, StoredEntity, SyncDB } from '../db/schema.ts';
import { errorMessage, StorageError } from '../protocol/errors.ts';

export type ApplyResult =
  /**
   * Written; `lastLSN` is the stored LSN afterwards. `unstorable` lists the changes IndexedDB
   * refused to take (e.g. data nested too deep to clone): skipped, as invalid items are.
   */
  | { applied: true; lastLSN: LSN; unstorable: Unstorable[] }
  /** A replay: the batch's LSN is not greater than the stored one, nothing was written. */
  | { applied: false; lastLSN: LSN };

/** Changes to write together, and the resume point they bring the store to. */
export interface Batch {
  changes: readonly Change[];
  lsn?: LSN | undefined;
}

/** A change IndexedDB cannot store whatever we retry: its position in the batch and why. */
export interface Unstorable {
  index: number;
  reason: string;
}

const ignore = (): void => {};

/**
 * True for the errors `put`/`delete` throw for the value itself, which fail the same way on every
 * replay: skipping that change is the only way past it. Anything else fails the whole batch.
 */
function isUnstorable(error: unknown): boolean {
  if (error instanceof RangeError) return true; // "Maximum call stack size exceeded" while cloning
  const name = error instanceof Error ? error.name : '';
  return name === 'DataCloneError' || name === 'DataError';
}

/** A batch that is not a replay: its place among the batches, and its LSN normalised. */
export interface FreshBatch {
  index: number;
  lsn: LSN | undefined;
}

/**
 * The batches still to apply, in order, from the resume point `current`: a batch whose `lsn` is
 * not greater than the LSN before it is a replay, already applied. A batch without one is new.
 */
export function freshBatches(batches: readonly Batch[], current: LSN): FreshBatch[] {
  const fresh: FreshBatch[] = [];
  batches.forEach(({ lsn }, index) => {
    const target = lsn === undefined ? undefined : normalizeLSN(lsn);
    if (target !== undefined && compareLSN(target, current) <= 0) return;
    fresh.push({ index, lsn: target });
    if (target !== undefined) current = target;
  });
  return fresh;
}

function storedLSN(value: unknown): LSN {
  return isLSN(value) ? normalizeLSN(value) : ZERO_LSN;
}

export class ChangeStore {
  readonly #db: SyncDB;
  #lastLSN: LSN = ZERO_LSN;

  constructor(db: SyncDB) {
    this.#db = db;
  }

  /** The stored LSN as of the last load or commit. */
  get lastLSN(): LSN {
    return this.#lastLSN;
  }

  /**
   * Reads the stored LSN (`0/0` when nothing was applied yet) for the store the changes go to.
   * An LSN the other store reached (the page switched between the built-in store and its own
   * Database) says nothing about this one, which then starts over from `0/0`; a built-in store
   * starting over is emptied first, so that it ends equal to the server's.
   */
  async load(store: ResumeStore = 'builtin'): Promise<LSN> {
    try {
      const tx = this.#db.transaction(['meta', 'entities'], 'readwrite');
      const meta = tx.objectStore('meta');
      const [lsn, owner] = await Promise.all([meta.get('lastLSN'), meta.get('lsnStore')]);
      const reached = storedLSN(lsn);
      const belongsTo: ResumeStore = owner === 'page' ? 'page' : 'builtin';
      if (belongsTo !== store && reached !== ZERO_LSN) {
        meta.delete('lastLSN').catch(ignore);
        if (store === 'builtin') tx.objectStore('entities').clear().catch(ignore);
        this.#lastLSN = ZERO_LSN;
      } else {
        this.#lastLSN = reached;
      }
      if (owner !== store) meta.put(store, 'lsnStore').catch(ignore);
      await tx.done;
      return this.#lastLSN;
    } catch (error) {
      throw new StorageError(`Could not read the stored LSN: ${errorMessage(error)}`);
    }
  }

  /**
   * Stores `lsn` as the resume point on its own, for changes that were applied elsewhere (a
   * database of the page's). Throws a {@link StorageError} when it cannot.
   */
  async saveLSN(lsn: LSN): Promise<void> {
    try {
      const tx = this.#db.transaction('meta', 'readwrite');
      // Never backwards (two workers without Web Locks may race): a lower LSN only means replays.
      if (compareLSN(lsn, storedLSN(await tx.store.get('lastLSN'))) > 0) tx.store.put(lsn, 'lastLSN').catch(ignore);
      await tx.done;
    } catch (error) {
      throw new StorageError(`The resume point ${lsn} was not stored: ${errorMessage(error)}`);
    }
    this.#lastLSN = lsn;
  }

  /**
   * Writes batches in order, each with its `lsn` (when given) as the new resume point, all in ONE
   * transaction: either every batch is stored with the LSN of the last one, or nothing is. A
   * batch whose `lsn` is not greater than the LSN before it is a replay and is skipped whole.
   * Throws a {@link StorageError} when the transaction fails; then nothing was written.
   */
  async applyBatches(batches: readonly Batch[]): Promise<ApplyResult[]> {
    let tx;
    try {
      tx = this.#db.transaction(['entities', 'meta'], 'readwrite');
    } catch (error) {
      throw new StorageError(`Could not start a transaction: ${errorMessage(error)}`);
    }
    const done = tx.done;
    done.catch(ignore);
    let last: LSN | undefined;
    try {
      const meta = tx.objectStore('meta');
      const entities = tx.objectStore('entities');
      let current = storedLSN(await meta.get('lastLSN'));
      const results: ApplyResult[] = batches.map(() => ({ applied: false, lastLSN: current }));
      for (const { index: at, lsn: target } of freshBatches(batches, current)) {
        // Issue every request, then wait for the commit once: awaiting each put is ~3x slower.
        const unstorable: Unstorable[] = [];
        batches[at]!.changes.forEach((change, index) => {
          try {
            if (change.type === 'update') entities.put(toEntity(change, target)).catch(ignore);
            else entities.delete([change.entityType, change.entityId]).catch(ignore);
          } catch (error) {
            // Thrown before any request exists: the transaction goes on without this change.
            if (!isUnstorable(error)) throw error;
            unstorable.push({ index, reason: `${change.entityType}/${change.entityId} cannot be stored: ${errorMessage(error)}` });
          }
        });
        if (target !== undefined) current = last = target;
        results[at] = { applied: true, lastLSN: current, unstorable };
      }
      if (last !== undefined) meta.put(last, 'lastLSN').catch(ignore);
      await done;
      this.#lastLSN = current;
      return results;
    } catch (error) {
      try {
        tx.abort();
      } catch {
        // Already aborted or finished.
      }
      throw new StorageError(`The batch${last ? ` up to ${last}` : ''} was not stored: ${errorMessage(error)}`);
    }
  }
}

function toEntity(change: Change & { type: 'update' }, lsn: LSN | undefined): StoredEntity {
  const entity: StoredEntity = { entityType: change.entityType, entityId: change.entityId, data: change.data };
  if (change.timestamp !== undefined) entity.timestamp = change.timestamp;
  if (lsn !== undefined) entity.lsn = lsn;
  return entity;
}
