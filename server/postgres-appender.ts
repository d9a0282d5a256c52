import type pg from 'pg';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { describe, isCancelled, isConnectionError, isPoolBusy, isRefusal } from './postgres-errors.ts';
import type { PostgresLink } from './postgres-link.ts';
import type { StampWaiters } from './postgres-waiters.ts';
import { refusalFrom } from './scopes.ts';
import { findOperation, MAX_WRITES_PER_COMMIT, writeRecords, writeStatus, type Write, type WriteState } from './postgres-writes.ts';
import { StoreRefusedError, StoreUnavailableError, type AppendResult, type StoredRecord, type WriteSequence } from './sync-store.ts';

interface Queued {
  write: Write;
  /** Its place in its sequence, from 1. */
  index: number;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

interface Sequence {
  waiting: Queued[];
  busy: boolean;
  queued: number;
  /** Writes up to this index were queued when one before them could not be stored: deferred, untried. */
  deferredUpTo: number;
}

/** What writing a group of writes in one transaction came to, once that transaction is over. */
interface Written {
  /** Each write's answer, settled once its record is stamped (or it is known to have failed). */
  answers: Promise<AppendResult>[];
  /** The store could not take the group now (nothing was stored): what is queued behind it is deferred. */
  deferred: boolean;
}

/**
 * Writes records into PostgreSQL and waits for the stamper to give each its LSN. The writes of
 * one sequence (a client's connection) commit in the order they were asked for: while one
 * transaction of a sequence commits, the writes asked for behind it wait, and then go together,
 * in order, in the next one (at most MAX_WRITES_PER_COMMIT). Writes of different sequences run
 * side by side on the pool.
 */
export class PostgresAppender {
  readonly #link: PostgresLink;
  readonly #waiters: StampWaiters;
  readonly #sequences = new WeakMap<WriteSequence, Sequence>();

  constructor(link: PostgresLink, waiters: StampWaiters) {
    this.#link = link;
    this.#waiters = waiters;
  }

  async append(write: Write, sequence?: WriteSequence): Promise<AppendResult> {
    if (!sequence) return (await this.#write([write])).answers[0]!;
    let state = this.#sequences.get(sequence);
    if (!state) this.#sequences.set(sequence, (state = { waiting: [], busy: false, queued: 0, deferredUpTo: 0 }));
    const queue = state;
    return new Promise<AppendResult>((resolve, reject) => {
      queue.waiting.push({ write, index: ++queue.queued, resolve, reject });
      void this.#drain(queue);
    });
  }

  /**
   * Writes run on different pooled connections, so two writes in flight could commit in either
   * order: a sequence's next group waits for the one before to commit (not to be stamped). A
   * write that the store could not take now defers every write queued behind it, untried.
   */
  async #drain(sequence: Sequence): Promise<void> {
    if (sequence.busy) return;
    sequence.busy = true;
    try {
      while (sequence.waiting.length > 0) {
        const group = sequence.waiting.splice(0, MAX_WRITES_PER_COMMIT);
        const tried = group.filter((item) => {
          if (item.index > sequence.deferredUpTo) return true;
          item.reject(new StoreUnavailableError('a write sent before this one was not stored; nothing was stored, so it can be sent again after that one'));
          return false;
        });
        if (tried.length === 0) continue;
        const written = await this.#write(tried.map((item) => item.write));
        if (written.deferred) sequence.deferredUpTo = sequence.queued;
        for (const [i, item] of tried.entries()) {
          written.answers[i]!.then(item.resolve, (error: unknown) => {
            // Known only after the commit (a connection lost mid-commit): what came after is deferred too.
            if (error instanceof StoreUnavailableError) sequence.deferredUpTo = sequence.queued;
            item.reject(error);
          });
        }
      }
    } finally {
      sequence.busy = false;
    }
  }

  /** Writes `writes` in one transaction; resolves once it is over, committed or not. */
  async #write(writes: readonly Write[]): Promise<Written> {
    // Registered before the write, so a record cannot be announced before anyone waits for it.
    const stamped = writes.map((write) => this.#waiters.waitFor(write.writeId));
    const cancel = () => {
      for (const wait of stamped) wait.cancel();
    };
    let client: pg.PoolClient;
    try {
      client = await this.#link.pool.connect();
    } catch (error) {
      cancel();
      return failed(writes, this.#refused(error));
    }
    let applied: Set<string>;
    try {
      applied = await writeRecords(client, writes);
      client.release();
    } catch (error) {
      client.release(true);
      if (!isConnectionError(error)) {
        cancel();
        // One write PostgreSQL refuses must not take the others with it: each alone, in order.
        if (writes.length > 1) return this.#writeEach(writes);
        // A value PostgreSQL rejects (a data exception, a size limit): final, not a store failure.
        if (isRefusal(error)) return failed(writes, new StoreRefusedError(`PostgreSQL cannot store this write: ${describe(error)}`));
        // Cancelled by statement_timeout: rolled back, so nothing was stored.
        if (isCancelled(error)) return failed(writes, new StoreUnavailableError(`the database did not answer in time (${describe(error)}); nothing was stored, so it can be sent again`));
        return failed(writes, error);
      }
      // The connection broke while the writes were under way: they may or may not have
      // committed (all or none). Only the database can tell, once it is back.
      this.#link.markUnavailable(error);
      return { answers: settle(writes.map((write, i) => this.#settleUnknown(write, stamped[i]!))), deferred: false };
    }
    const answers = writes.map(async (write, i): Promise<AppendResult> => {
      if (!applied.has(write.writeId)) {
        stamped[i]!.cancel();
        return this.#duplicate(write.operationId!);
      }
      const record = await stamped[i]!.promise;
      return { lsn: record.lsn, position: record.position, duplicate: false };
    });
    return { answers: settle(answers), deferred: false };
  }

  /** Each write in a transaction of its own, in order; once one is deferred, so is the rest. */
  async #writeEach(writes: readonly Write[]): Promise<Written> {
    const answers: Promise<AppendResult>[] = [];
    for (const [i, write] of writes.entries()) {
      const written = await this.#write([write]);
      answers.push(...written.answers);
      if (written.deferred) {
        const rest = failed(writes.slice(i + 1), new StoreUnavailableError('a write sent before this one was not stored; nothing was stored, so it can be sent again after that one'));
        return { answers: [...answers, ...rest.answers], deferred: true };
      }
    }
    return { answers, deferred: false };
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

/** Answers that fail with `error`; deferred when it says the store could not take them now. */
function failed(writes: readonly Write[], error: unknown): Written {
  return { answers: settle(writes.map(() => Promise.reject(error))), deferred: error instanceof StoreUnavailableError };
}

/** Marks answers as handled: whoever takes them handles them, one nobody takes must not crash the process. */
function settle(answers: Promise<AppendResult>[]): Promise<AppendResult>[] {
  for (const answer of answers) answer.catch(() => {});
  return answers;
}
