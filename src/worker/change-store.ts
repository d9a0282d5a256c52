/**
 * Stores the server's changes together with the resume point (`meta.lastLSN`), one commit per
 * readwrite transaction (docs/protocol.md "Guarantees"). A commit is one record in `segments`,
 * whatever its size (IndexedDB's cost is per record, not per byte); `Folder` later moves segments
 * into `entities`, one record per entity.
 */
import type { Change } from '../protocol/change.ts';
import { compareLSN, isLSN, normalizeLSN, ZERO_LSN, type LSN } from '../protocol/lsn.ts';
import type { ResumeStore, StoredSegment, SyncDB } from '../db/schema.ts';
import { errorMessage, StorageError } from '../protocol/errors.ts';
import { removeFromGroups } from '../db/outbox-groups.ts';
import type { Covered } from './acknowledged.ts';

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
      const tx = this.#db.transaction(['meta', 'entities', 'segments'], 'readwrite');
      const meta = tx.objectStore('meta');
      const [lsn, owner] = await Promise.all([meta.get('lastLSN'), meta.get('lsnStore')]);
      const reached = storedLSN(lsn);
      const belongsTo: ResumeStore = owner === 'page' ? 'page' : 'builtin';
      if (belongsTo !== store && reached !== ZERO_LSN) {
        meta.delete('lastLSN').catch(ignore);
        if (store === 'builtin') emptyEntities(tx);
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
   * Stores `lsn` as the resume point on its own: for changes that were applied elsewhere (a
   * database of the page's), or a catch-up that ended at a position past the last change sent
   * (`sync_complete.lsn`). Deletes, in the same transaction, the records of the `covering`
   * operations that it covers; returns their ids. Throws a {@link StorageError} when it cannot.
   */
  async saveLSN(lsn: LSN, covering: readonly Covered[] = []): Promise<string[]> {
    let settled: string[] = [];
    try {
      const tx = this.#db.transaction(covering.length > 0 ? ['meta', 'outbox'] : ['meta'], 'readwrite');
      const meta = tx.objectStore('meta');
      // Never backwards (two workers without Web Locks may race): a lower LSN only means replays.
      const current = storedLSN(await meta.get('lastLSN'));
      const target = compareLSN(lsn, current) > 0 ? lsn : current;
      if (target === lsn) meta.put(lsn, 'lastLSN').catch(ignore);
      settled = deleteCovered(tx, covering, target);
      await tx.done;
      this.#lastLSN = target;
    } catch (error) {
      throw new StorageError(`The resume point ${lsn} was not stored: ${errorMessage(error)}`);
    }
    return settled;
  }

  /**
   * The server's log does not continue from the resume point (`reset`): discards every entity and
   * the resume point in one transaction, so that a sync from `0/0` rebuilds the store. The
   * outbox stays. Throws a {@link StorageError} when it cannot.
   */
  async reset(): Promise<void> {
    try {
      const tx = this.#db.transaction(['entities', 'segments', 'meta'], 'readwrite');
      emptyEntities(tx);
      tx.objectStore('meta').delete('lastLSN').catch(ignore);
      await tx.done;
    } catch (error) {
      throw new StorageError(`The store could not be emptied for the server's reset: ${errorMessage(error)}`);
    }
    this.#lastLSN = ZERO_LSN;
  }

  /**
   * Writes batches in order, each with its `lsn` (when given) as the new resume point, all in ONE
   * transaction and ONE segment record: either every batch is stored with the LSN of the last
   * one, or nothing is. A batch whose `lsn` is not greater than the LSN before it is a replay and
   * is skipped whole. The records of the `covering` operations the new resume point covers are
   * deleted in the same transaction (`settled`). `segment` is the new segment's key, if the
   * batches carried changes. Throws a {@link StorageError} when the transaction fails; then
   * nothing was written.
   */
  async applyBatches(
    batches: readonly Batch[],
    covering: readonly Covered[] = [],
  ): Promise<{ results: ApplyResult[]; settled: string[]; segment: number | undefined }> {
    let tx;
    try {
      tx = this.#db.transaction(covering.length > 0 ? ['segments', 'meta', 'outbox'] : ['segments', 'meta'], 'readwrite');
    } catch (error) {
      throw new StorageError(`Could not start a transaction: ${errorMessage(error)}`);
    }
    const done = tx.done;
    done.catch(ignore);
    let last: LSN | undefined;
    try {
      const meta = tx.objectStore('meta');
      let current = storedLSN(await meta.get('lastLSN'));
      const results: ApplyResult[] = batches.map(() => ({ applied: false, lastLSN: current }));
      const segment: StoredSegment = { batches: [] };
      /** The batch each of the segment's comes from. */
      const from: number[] = [];
      for (const { index: at, lsn: target } of freshBatches(batches, current)) {
        from.push(at);
        segment.batches.push(target === undefined ? { changes: [...batches[at]!.changes] } : { changes: [...batches[at]!.changes], lsn: target });
        if (target !== undefined) current = last = target;
        results[at] = { applied: true, lastLSN: current, unstorable: [] };
      }
      let key: number | undefined;
      if (segment.batches.some((batch) => batch.changes.length > 0)) {
        key = await addSegment(tx.objectStore('segments'), segment, (index, unstorable) => {
          const result = results[from[index]!];
          if (result?.applied) result.unstorable = unstorable;
        });
      }
      if (last !== undefined) meta.put(last, 'lastLSN').catch(ignore);
      const settled = deleteCovered(tx, covering, current);
      await done;
      this.#lastLSN = current;
      return { results, settled, segment: key };
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

/** Empties the entity store: the folded entities and the segments not folded yet. */
function emptyEntities(tx: { objectStore(name: 'entities' | 'segments'): { clear(): Promise<unknown> } }): void {
  tx.objectStore('entities').clear().catch(ignore);
  tx.objectStore('segments').clear().catch(ignore);
}

/**
 * Adds the segment and answers its key. A change IndexedDB cannot clone fails the whole record:
 * then each change is tried alone, those that cannot be cloned are left out (and reported through
 * `unstorable(batchIndex, list)`), and the rest is added.
 */
async function addSegment(
  segments: { add(value: StoredSegment): Promise<number> },
  segment: StoredSegment,
  unstorable: (batch: number, list: Unstorable[]) => void,
): Promise<number> {
  try {
    return await segments.add(segment);
  } catch (error) {
    if (!isUnstorable(error)) throw error;
  }
  const kept: StoredSegment = { batches: segment.batches.map((batch, at) => {
    const refused: Unstorable[] = [];
    const changes = batch.changes.filter((change, index) => {
      try {
        structuredClone(change);
        return true;
      } catch (error) {
        if (!isUnstorable(error)) throw error;
        refused.push({ index, reason: `${change.entityType}/${change.entityId} cannot be stored: ${errorMessage(error)}` });
        return false;
      }
    });
    if (refused.length > 0) unstorable(at, refused);
    return { ...batch, changes };
  }) };
  return segments.add(kept);
}

/**
 * Takes, in `tx`, the operations a resume point of `upTo` covers out of the outbox; answers their
 * ids. The transaction fails if that does.
 */
function deleteCovered(
  tx: { objectStore(name: 'outbox'): Parameters<typeof removeFromGroups>[0] },
  covering: readonly Covered[],
  upTo: LSN,
): string[] {
  const settled = covering.filter(({ lsn }) => compareLSN(lsn, upTo) <= 0);
  if (settled.length > 0) removeFromGroups(tx.objectStore('outbox'), settled).catch(ignore);
  return settled.map(({ id }) => id);
}
