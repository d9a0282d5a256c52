import type pg from 'pg';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { describe, isCancelled, isConnectionError, isPoolBusy, isRefusal } from './postgres-errors.ts';
import type { PostgresLink } from './postgres-link.ts';
import type { StampWaiters } from './postgres-waiters.ts';
import { refusalFrom } from './scopes.ts';
import { findOperation, writeRecord, writeStatus, type Write, type WriteState } from './postgres-writes.ts';
import { StoreRefusedError, StoreUnavailableError, type AppendResult, type StoredRecord, type WriteSequence } from './sync-store.ts';

/**
 * Writes records into PostgreSQL and waits for the stamper to give each its LSN. Each write is
 * one transaction on a pooled connection; the writes of one sequence (a client's connection)
 * commit in the order they were asked for.
 */
export class PostgresAppender {
  readonly #link: PostgresLink;
  readonly #waiters: StampWaiters;
  /** Per sequence: the write whose commit the next one waits for. */
  readonly #sequences = new WeakMap<WriteSequence, { tail: Promise<void>; queued: number; deferredUpTo: number }>();

  constructor(link: PostgresLink, waiters: StampWaiters) {
    this.#link = link;
    this.#waiters = waiters;
  }

  append(write: Write, sequence?: WriteSequence): Promise<AppendResult> {
    return sequence ? this.#appendInSequence(write, sequence) : this.#append(write);
  }

  /**
   * Writes run on different pooled connections, so two writes in flight could commit in either
   * order: one sequence's writes each wait for the one before to commit (not to be stamped).
   * A write that the store could not take now defers every write queued behind it, untried.
   */
  async #appendInSequence(write: Write, key: WriteSequence): Promise<AppendResult> {
    let sequence = this.#sequences.get(key);
    if (!sequence) this.#sequences.set(key, (sequence = { tail: Promise.resolve(), queued: 0, deferredUpTo: 0 }));
    const state = sequence;
    const index = ++state.queued;
    let done!: () => void;
    const turn = state.tail;
    state.tail = new Promise<void>((resolve) => { done = resolve; });
    try {
      await turn;
      if (index <= state.deferredUpTo) {
        throw new StoreUnavailableError('a write sent before this one was not stored; nothing was stored, so it can be sent again after that one');
      }
      return await this.#append(write, done);
    } catch (error) {
      if (error instanceof StoreUnavailableError) state.deferredUpTo = state.queued;
      throw error;
    } finally {
      done();
    }
  }

  /** `committed` is called once the write's transaction is over (before its record is stamped). */
  async #append(write: Write, committed?: () => void): Promise<AppendResult> {
    // Registered before the write, so the record cannot be announced before anyone waits for it.
    const stamped = this.#waiters.waitFor(write.writeId);
    let client: pg.PoolClient;
    try {
      client = await this.#link.pool.connect();
    } catch (error) {
      stamped.cancel();
      throw this.#refused(error);
    }
    let applied: boolean;
    try {
      applied = await writeRecord(client, write);
      client.release();
      committed?.();
    } catch (error) {
      client.release(true);
      if (!isConnectionError(error)) {
        stamped.cancel();
        // A value PostgreSQL rejects (a data exception, a size limit): final, not a store failure.
        if (isRefusal(error)) throw new StoreRefusedError(`PostgreSQL cannot store this write: ${describe(error)}`);
        // Cancelled by statement_timeout: rolled back, so nothing was stored.
        if (isCancelled(error)) throw new StoreUnavailableError(`the database did not answer in time (${describe(error)}); nothing was stored, so it can be sent again`);
        throw error;
      }
      // The connection broke while the write was under way: it may or may not have committed.
      // Only the database can tell, once it is back.
      this.#link.markUnavailable(error);
      return this.#settleUnknown(write, stamped);
    }
    if (!applied) {
      stamped.cancel();
      return this.#duplicate(write.operationId!);
    }
    const record = await stamped.promise;
    return { lsn: record.lsn, position: record.position, duplicate: false };
  }

  /** A connection error before anything was sent: certainly not applied. */
  #refused(error: unknown): Error {
    if (isPoolBusy(error)) {
      // Every pooled connection was busy for connectionTimeout: this one write waits no longer,
      // but the database is there, so the instance stays available.
      return new StoreUnavailableError('the database is busy (no free connection in time); nothing was stored, so it can be sent again');
    }
    if (!isConnectionError(error)) return error instanceof Error ? error : new Error(String(error));
    this.#link.markUnavailable(error);
    return new StoreUnavailableError(`the database is unavailable (${describe(error)}); nothing was stored, so it can be sent again`);
  }

  async #settleUnknown(write: Write, stamped: { promise: Promise<StoredRecord>; cancel(): void }): Promise<AppendResult> {
    const status = await this.#link.read((db) => writeStatus(db, write.writeId)).catch((error: unknown) => {
      stamped.cancel();
      throw error;
    });
    if (status === undefined) {
      stamped.cancel();
      throw new StoreUnavailableError('the database connection was lost before the write committed; nothing was stored, so it can be sent again');
    }
    const record = await stamped.promise;
    return { lsn: record.lsn, position: record.position, duplicate: false };
  }

  /** The operation was applied by an earlier write, maybe on another instance: its record's LSN. */
  async #duplicate(operationId: string): Promise<AppendResult> {
    const found = await this.#link.read((db) => findOperation(db, operationId));
    if (!found) throw new Error(`operation ${operationId} conflicted but was not found`);
    const fingerprint = found.fingerprint === null ? {} : { fingerprint: found.fingerprint };
    if (found.lsn !== null) return { ...settled(found, true), ...fingerprint };
    const stamped = this.#waiters.waitFor(found.writeId);
    const again = await this.#link.read((db) => writeStatus(db, found.writeId));
    if (again && again.lsn !== null) {
      stamped.cancel();
      return { ...settled(again, true), ...fingerprint };
    }
    const record = await stamped.promise;
    return { lsn: record.lsn, position: record.position, duplicate: true, ...fingerprint };
  }
}

/** The answer for a write already stamped: its record's LSN, or why it was refused. */
function settled(state: WriteState, duplicate: boolean): AppendResult {
  if (state.refused !== null) throw refusalFrom(state.refused);
  const position = state.lsn === null ? undefined : parseLSN(state.lsn);
  if (position === undefined) throw new Error(`malformed LSN ${state.lsn} in the change log`);
  return { lsn: formatLSN(position), position, duplicate };
}
