import type pg from 'pg';
import { formatLSN } from '../src/protocol/lsn.ts';
import { entityKey, resolveEdits } from './edit.ts';
import type { DecodedTransaction } from './pgoutput.ts';
import { describe, isConnectionError } from './postgres-errors.ts';
import { readHead } from './postgres-reads.ts';
import { NAMES } from './postgres-schema.ts';
import { readKnown, writeIds, writeStamp, type Known, type StampRecord } from './postgres-stamp-queries.ts';
import { decodeWrite, salvageWriteId, type Write } from './postgres-writes.ts';
import { refusalText, ScopeRefusal, scopeChanges, type ScopeOf } from './scopes.ts';

export interface StampOptions {
  /** Tests: runs after a stamp has committed and before the slot is told. */
  afterCommit?: () => void | Promise<void>;
  /** Names each entity's scope as its write is resolved. */
  scopeOf?: ScopeOf;
}

interface PendingRecord {
  lsn: bigint;
  write: Write;
  /** Why it cannot be applied, found while decoding. */
  refused?: string;
}

/**
 * Stamps committed transactions, in commit order, on the session that holds the stamper lock:
 * adds each write as a record to the change log and applies its changes to the entities, in one
 * statement. A transaction's record has its commit's end LSN; a transaction that carries several
 * writes (one client's, written together) has one record per write, at the last positions of its
 * commit record, in the order written (the last one at the end LSN): positions no other commit
 * has. A patch is merged here, into the value the records before it (in commit order) left: the
 * stamper is the one writer of the entities, so two patches of one entity committed at once both
 * count, whichever instance wrote them. Stamping a transaction again (the stream resent it after a
 * crash) adds nothing twice: records at or below the log's head, and writes that have a record,
 * are known already. Returns how many records were added.
 */
export async function stampTransactions(session: pg.Client, transactions: readonly DecodedTransaction[], options: StampOptions): Promise<number> {
  return stampWithFallback(session, transactions.flatMap(recordsOf), options);
}

/**
 * Stamps the writes kept in the pending table that have no record yet, in the order they were
 * made, at the positions just above the log's head (head + 1, head + 2, ...). Run after the slot
 * was recreated: writes committed while it was missing are in no slot any more. Each of them
 * committed after the head's transaction (whatever came before was stamped) and every one has its
 * own position in its commit record, so these positions lie below the commit of every write not
 * among them, and a write stamped here that the new slot also sends is known by its id. Returns
 * how many records were added.
 */
export async function stampPending(session: pg.Client, pageSize: number, options: StampOptions): Promise<number> {
  let added = 0;
  let after = 0n;
  for (;;) {
    const head = await readHead(session);
    const rows = await session.query<{ write_id: string; seq: string; content: string }>(
      `SELECT p.write_id::text AS write_id, p.seq::text AS seq, p.content FROM ${NAMES.pending} p
        WHERE p.seq > $1 AND NOT EXISTS (SELECT 1 FROM ${NAMES.changeLog} c WHERE c.write_id = p.write_id)
        ORDER BY p.seq LIMIT $2`,
      [after.toString(), pageSize],
    );
    const records = rows.rows.map((row, i): PendingRecord => {
      const lsn = head + BigInt(i + 1);
      const write = decodeWrite(row.content);
      if (typeof write !== 'string') return { lsn, write: { ...write, writeId: row.write_id } };
      loud(`the kept write ${row.write_id} is not a valid write (${write}); logged as refused`);
      return { lsn, write: { writeId: row.write_id, changes: [] }, refused: `not a valid write: ${write}` };
    });
    added += await stampWithFallback(session, records, options);
    const last = rows.rows.at(-1);
    if (!last || rows.rows.length < pageSize) return added;
    after = BigInt(last.seq);
  }
}

/** The records a committed transaction stands for: one per write it carries (or names and cannot be). */
function recordsOf(transaction: DecodedTransaction): PendingRecord[] {
  const found: Omit<PendingRecord, 'lsn'>[] = [];
  for (const message of transaction.messages) {
    if (message.prefix !== NAMES.messagePrefix) continue;
    const content = message.content.toString('utf8');
    const write = decodeWrite(content);
    if (typeof write !== 'string') {
      found.push({ write });
      continue;
    }
    // A writer waits for its write id: one it can name gets a refused record, not silence.
    const named = salvageWriteId(content);
    loud(`a logical message at ${formatLSN(transaction.endLsn)} is not a valid write (${write})${named ? '; logged as refused' : '; skipped'}`);
    if (named) found.push({ write: { ...named, changes: [] }, refused: `not a valid write: ${write}` });
  }
  // Positions in (commitLsn, endLsn] belong to this commit alone. A commit record is longer than
  // the writes one transaction carries (the store writes at most MAX_WRITES_PER_COMMIT); should
  // it not be, the writes that do not fit are skipped, loudly, rather than given another's place.
  const room = Number(transaction.endLsn - transaction.commitLsn);
  if (found.length > room) loud(`the transaction at ${formatLSN(transaction.endLsn)} carries ${found.length} writes, more than its commit record has positions (${room}); the first ${found.length - room} skipped`);
  return found.slice(-room).map((record, i, kept) => ({ ...record, lsn: transaction.endLsn - BigInt(kept.length - 1 - i) }));
}

async function stampWithFallback(session: pg.Client, records: PendingRecord[], options: StampOptions): Promise<number> {
  if (records.length === 0) return 0;
  let stamped: number;
  try {
    stamped = await stampAtOnce(session, records, options.scopeOf);
  } catch (error) {
    if (isConnectionError(error)) throw error;
    // One record PostgreSQL cannot take must not stop every later one: again, one at a time.
    loud(`stamping ${records.length} records failed (${describe(error)}); stamping them one at a time`);
    stamped = await stampOneByOne(session, records, options.scopeOf);
  }
  await options.afterCommit?.();
  return stamped;
}

/**
 * The usual way: one query reads what is known, one statement writes the records that are new
 * (above the log's head, their write without a record) and forgets their kept messages. Only the
 * stamper writes these tables, so nothing changes in between.
 */
async function stampAtOnce(session: pg.Client, records: readonly PendingRecord[], scopeOf: ScopeOf | undefined): Promise<number> {
  const ids = records.map((record) => record.write.writeId);
  const known = await readKnown(session, ids, records.flatMap((record) => record.write.changes));
  const fresh = records.filter((record) => record.lsn > known.head && !known.stamped.has(record.write.writeId));
  const resolved = resolveRecords(fresh, known, scopeOf);
  // Only this session adds to the log, so what it adds now is all the log has after the head it read.
  await writeStamp(session, resolved, ids, resolved.at(-1)?.lsn, known.head);
  return resolved.length;
}

/**
 * After a stamp PostgreSQL refused: each new record in a savepoint of one transaction; one it
 * refuses is logged as refused (its reason, no changes, nothing applied), so its writer gets a
 * final answer and later writes flow.
 */
async function stampOneByOne(session: pg.Client, records: readonly PendingRecord[], scopeOf: ScopeOf | undefined): Promise<number> {
  const ids = records.map((record) => record.write.writeId);
  await session.query('BEGIN');
  try {
    const known = await readKnown(session, ids, []);
    const fresh = records.filter((record) => record.lsn > known.head && !known.stamped.has(record.write.writeId));
    let added = 0;
    let announce: bigint | undefined;
    for (const record of fresh) {
      await session.query('SAVEPOINT stamp_record');
      try {
        const current = await readKnown(session, [], record.write.changes);
        await writeStamp(session, resolveRecords([record], current, scopeOf), []);
        await session.query('RELEASE SAVEPOINT stamp_record');
        added += 1;
        announce = record.lsn;
        continue;
      } catch (error) {
        if (isConnectionError(error)) throw error;
        await session.query('ROLLBACK TO SAVEPOINT stamp_record');
        loud(`the write at ${formatLSN(record.lsn)} (operation ${JSON.stringify(record.write.operationId ?? null)}) could not be applied and is logged as refused: ${describe(error)}`);
        record.refused = `PostgreSQL could not apply it: ${describe(error)}`;
      }
      await session.query('SAVEPOINT stamp_record');
      try {
        await writeStamp(session, resolveRecords([record], { head: 0n, stamped: new Set(), entities: new Map() }, scopeOf), []);
        await session.query('RELEASE SAVEPOINT stamp_record');
        added += 1;
        announce = record.lsn;
      } catch (error) {
        if (isConnectionError(error)) throw error;
        await session.query('ROLLBACK TO SAVEPOINT stamp_record');
        loud(`the write at ${formatLSN(record.lsn)} could not even be logged as refused, skipped: ${describe(error)}`);
      }
    }
    await writeStamp(session, [], writeIds(ids), announce);
    await session.query('COMMIT');
    return added;
  } catch (error) {
    await session.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/**
 * Merges the patches of `records`, in order, into the entities' values as `known` has them, and
 * names each change's scope. A record its writer's scopes do not allow (or whose scopeOf fails)
 * is refused and changes nothing.
 */
function resolveRecords(records: readonly PendingRecord[], known: Known, scopeOf: ScopeOf | undefined): StampRecord[] {
  const entities = new Map(known.entities);
  return records.map((record): StampRecord => {
    const base = { lsn: record.lsn, writeId: record.write.writeId, ...(record.write.operationId === undefined ? {} : { operationId: record.write.operationId }) };
    if (record.refused !== undefined) return { ...base, changes: [], scopes: [], refused: record.refused };
    const changes = resolveEdits(record.write.changes, (entityType, entityId) => entities.get(entityKey(entityType, entityId))?.data);
    let scopes;
    try {
      scopes = scopeChanges(changes, (key) => entities.get(key)?.scope, scopeOf, record.write.allowedScopes);
    } catch (error) {
      if (!(error instanceof ScopeRefusal)) throw error;
      return { ...base, changes: [], scopes: [], refused: refusalText(error) };
    }
    for (const [i, change] of changes.entries()) {
      const key = entityKey(change.entityType, change.entityId);
      if (change.type === 'delete') entities.delete(key);
      else entities.set(key, { data: change.data, scope: scopes[i]!.scope });
    }
    return { ...base, changes, scopes };
  });
}

function loud(message: string): void {
  console.error(`sync store (PostgreSQL) stamper: ${message}`);
  process.emitWarning(`sync store stamper: ${message}`);
}
