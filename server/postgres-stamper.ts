import type pg from 'pg';
import type { Change } from '../src/protocol/change.ts';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { entityKey, resolveEdits, type Edit } from './edit.ts';
import type { DecodedTransaction } from './pgoutput.ts';
import { describe, isConnectionError } from './postgres-errors.ts';
import { NAMES } from './postgres-schema.ts';
import { decodeWrite, salvageWriteId, type Write } from './postgres-writes.ts';
import { encodeScopes, readHead } from './postgres-reads.ts';
import { refusalText, ScopeRefusal, scopeChanges, touchedScopes, type ChangeScope, type ScopeOf } from './scopes.ts';

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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Stamps committed transactions, in commit order, on the session that holds the stamper lock:
 * adds each write as a record whose LSN is its commit's end LSN to the change log and applies its
 * changes to the entities, all in one transaction. A patch is merged here, into the value the
 * records before it (in commit order) left: the stamper is the one writer of the entities, so two
 * patches of one entity committed at once both count, whichever instance wrote them. Stamping a
 * transaction again (the stream resent it after a crash) adds nothing twice: records at or below
 * the log's head, and writes that have a record, are known already. Returns how many records
 * were added.
 */
export async function stampTransactions(session: pg.Client, transactions: readonly DecodedTransaction[], options: StampOptions): Promise<number> {
  const records = transactions.flatMap((transaction) => {
    const record = recordOf(transaction);
    return record ? [record] : [];
  });
  return stampWithFallback(session, records, options);
}

/**
 * Stamps the writes kept in the pending table that have no record yet, in the order they were
 * made, at the positions just above the log's head (head + 1, head + 2, ...). Run after the slot
 * was recreated: writes committed while it was missing are in no slot any more. Each of them
 * committed after the head's transaction (whatever came before was stamped) and every one has its
 * own commit record, so these positions lie below the commit of every write not among them, and a
 * write stamped here that the new slot also sends is known by its id. Returns how many records
 * were added.
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
    const records = rows.rows.map((row, i) => {
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

/** The record a committed transaction stands for, if it carries a write (or names one it cannot be). */
function recordOf(transaction: DecodedTransaction): PendingRecord | undefined {
  const writes: Write[] = [];
  let refused: PendingRecord | undefined;
  for (const message of transaction.messages) {
    if (message.prefix !== NAMES.messagePrefix) continue;
    const content = message.content.toString('utf8');
    const write = decodeWrite(content);
    if (typeof write !== 'string') {
      writes.push(write);
      continue;
    }
    // A writer waits for its write id: one it can name gets a refused record, not silence.
    const named = salvageWriteId(content);
    loud(`a logical message at ${formatLSN(transaction.endLsn)} is not a valid write (${write})${named ? '; logged as refused' : '; skipped'}`);
    if (named && !refused) refused = { lsn: transaction.endLsn, write: { ...named, changes: [] }, refused: `not a valid write: ${write}` };
  }
  const first = writes[0];
  // The store writes one message per transaction; should a transaction carry more, it is still
  // one commit, so one record.
  if (first) return { lsn: transaction.endLsn, write: { ...first, changes: writes.flatMap((write) => write.changes) } };
  return refused;
}

async function stampWithFallback(session: pg.Client, records: PendingRecord[], options: StampOptions): Promise<number> {
  if (records.length === 0) return 0;
  let stamped: number;
  try {
    stamped = await stampRecords(session, records, false, options.scopeOf);
  } catch (error) {
    if (isConnectionError(error)) throw error;
    // One record PostgreSQL cannot take must not stop every later one: again, one at a time.
    loud(`stamping ${records.length} records failed (${describe(error)}); stamping them one at a time`);
    stamped = await stampRecords(session, records, true, options.scopeOf);
  }
  await options.afterCommit?.();
  return stamped;
}

/**
 * Adds the records that are new (above the log's head, their write without a record) and applies
 * their changes, in one transaction that also forgets their kept messages. With `oneByOne`, each
 * record gets a savepoint: one that PostgreSQL refuses is logged as refused (its reason, no
 * changes, nothing applied), so its writer gets a final answer and later writes flow.
 */
async function stampRecords(session: pg.Client, records: readonly PendingRecord[], oneByOne: boolean, scopeOf: ScopeOf | undefined): Promise<number> {
  const ids = [...new Set(records.map((record) => record.write.writeId).filter((id) => UUID.test(id)))];
  await session.query('BEGIN');
  try {
    const known = await session.query<{ head: string; stamped: string[] }>(
      `SELECT coalesce((SELECT max(lsn) FROM ${NAMES.changeLog}), '0/0')::text AS head,
              ARRAY(SELECT write_id::text FROM ${NAMES.changeLog} WHERE write_id = ANY($1::uuid[])) AS stamped`,
      [ids],
    );
    const head = parseLSN(known.rows[0]!.head) ?? 0n;
    const stamped = new Set(known.rows[0]!.stamped);
    const fresh = records.filter((record) => record.lsn > head && !stamped.has(record.write.writeId));
    let added = 0;
    if (!oneByOne) {
      const good = fresh.filter((record) => record.refused === undefined);
      const resolved = await resolveRecords(session, good, scopeOf);
      await insertRecords(session, resolved);
      await applyEntities(session, resolved);
      for (const record of fresh) if (record.refused !== undefined) await insertRefused(session, record, record.refused);
      added = fresh.length;
    } else {
      for (const record of fresh) {
        if (record.refused === undefined) {
          await session.query('SAVEPOINT stamp_record');
          try {
            const resolved = await resolveRecords(session, [record], scopeOf);
            await insertRecords(session, resolved);
            await applyEntities(session, resolved);
            await session.query('RELEASE SAVEPOINT stamp_record');
            if (record.refused === undefined) {
              added += 1;
              continue;
            }
          } catch (error) {
            if (isConnectionError(error)) throw error;
            await session.query('ROLLBACK TO SAVEPOINT stamp_record');
            record.refused = `PostgreSQL could not apply it: ${describe(error)}`;
            loud(`the write at ${formatLSN(record.lsn)} (operation ${JSON.stringify(record.write.operationId ?? null)}) could not be applied and is logged as refused: ${describe(error)}`);
          }
        }
        await session.query('SAVEPOINT stamp_record');
        try {
          await insertRefused(session, record, record.refused);
          await session.query('RELEASE SAVEPOINT stamp_record');
          added += 1;
        } catch (error) {
          if (isConnectionError(error)) throw error;
          await session.query('ROLLBACK TO SAVEPOINT stamp_record');
          loud(`the write at ${formatLSN(record.lsn)} could not even be logged as refused, skipped: ${describe(error)}`);
        }
      }
    }
    if (ids.length > 0) await session.query(`DELETE FROM ${NAMES.pending} WHERE write_id = ANY($1::uuid[])`, [ids]);
    if (fresh.length > 0) await session.query('SELECT pg_notify($1, $2)', [NAMES.stamped, formatLSN(fresh.at(-1)!.lsn)]);
    await session.query('COMMIT');
    return added;
  } catch (error) {
    await session.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** A record that holds no changes, only why its write was not applied. */
async function insertRefused(session: pg.Client, record: PendingRecord, reason: string): Promise<void> {
  const operationId = record.write.operationId;
  const safeId = operationId !== undefined && !operationId.includes('\u0000') ? operationId : null;
  await session.query(
    `INSERT INTO ${NAMES.changeLog} (lsn, write_id, operation_id, changes, change_count, refused)
     VALUES ($1::pg_lsn, $2::uuid, $3, '[]', 0, $4) ON CONFLICT DO NOTHING`,
    [formatLSN(record.lsn), record.write.writeId, safeId, reason.replaceAll('\u0000', '\\0')],
  );
}

function loud(message: string): void {
  console.error(`sync store (PostgreSQL) stamper: ${message}`);
  process.emitWarning(`sync store stamper: ${message}`);
}

interface ResolvedRecord {
  lsn: bigint;
  write: Write;
  /** The write's changes with every patch merged: what the log keeps and clients get. */
  changes: Change[];
  /** Each change's scope, in order. */
  scopes: ChangeScope[];
}

/**
 * Merges the patches of `records`, in order, into the entities' values as this transaction sees
 * them, and names each change's scope. A record its writer's scopes do not allow (or whose
 * scopeOf fails) is marked refused and changes nothing.
 */
async function resolveRecords(session: pg.Client, records: PendingRecord[], scopeOf: ScopeOf | undefined): Promise<ResolvedRecord[]> {
  const entities = await currentEntities(session, records.flatMap((record) => record.write.changes));
  const resolved: ResolvedRecord[] = [];
  for (const record of records) {
    const changes = resolveEdits(record.write.changes, (entityType, entityId) => entities.get(entityKey(entityType, entityId))?.data);
    let scopes: ChangeScope[];
    try {
      scopes = scopeChanges(changes, (key) => entities.get(key)?.scope, scopeOf, record.write.allowedScopes);
    } catch (error) {
      if (!(error instanceof ScopeRefusal)) throw error;
      record.refused = refusalText(error);
      continue;
    }
    for (const [i, change] of changes.entries()) {
      const key = entityKey(change.entityType, change.entityId);
      if (change.type === 'delete') entities.delete(key);
      else entities.set(key, { data: change.data, scope: scopes[i]!.scope });
    }
    resolved.push({ lsn: record.lsn, write: record.write, changes, scopes });
  }
  return resolved;
}

/** The stored values and scopes of the entities `edits` touch, by entity key. */
async function currentEntities(session: pg.Client, edits: readonly Edit[]): Promise<Map<string, { data: unknown; scope: string }>> {
  const entities = new Map<string, { data: unknown; scope: string }>();
  if (edits.length === 0) return entities;
  const rows = await session.query<{ entity_type: string; entity_id: string; data: unknown; scope: string }>(
    `SELECT e.entity_type, e.entity_id, e.data, e.scope FROM ${NAMES.entities} e
       JOIN unnest($1::text[], $2::text[]) AS k(entity_type, entity_id)
         ON e.entity_type = k.entity_type AND e.entity_id = k.entity_id`,
    [edits.map((edit) => edit.entityType), edits.map((edit) => edit.entityId)],
  );
  for (const row of rows.rows) entities.set(entityKey(row.entity_type, row.entity_id), { data: row.data, scope: row.scope });
  return entities;
}

async function insertRecords(session: pg.Client, records: readonly ResolvedRecord[]): Promise<void> {
  if (records.length === 0) return;
  await session.query(
    `INSERT INTO ${NAMES.changeLog} (lsn, write_id, operation_id, changes, change_count, scopes)
     SELECT * FROM unnest($1::pg_lsn[], $2::uuid[], $3::text[], $4::json[], $5::integer[], $6::json[])
     ON CONFLICT DO NOTHING`,
    [
      records.map((record) => formatLSN(record.lsn)),
      records.map((record) => record.write.writeId),
      records.map((record) => record.write.operationId ?? null),
      records.map((record) => JSON.stringify(record.changes)),
      records.map((record) => record.changes.length),
      records.map((record) => encodeScopes(record.scopes)),
    ],
  );
  const index = records.flatMap((record) => touchedScopes(record.scopes).map((scope) => [scope, formatLSN(record.lsn)] as const));
  await session.query(
    `INSERT INTO ${NAMES.changeScopes} (scope, lsn) SELECT * FROM unnest($1::text[], $2::pg_lsn[]) ON CONFLICT DO NOTHING`,
    [index.map(([scope]) => scope), index.map(([, lsn]) => lsn)],
  );
}

/** Applies changes in order: per entity the last one wins, so each entity is written once. */
async function applyEntities(session: pg.Client, records: readonly ResolvedRecord[]): Promise<void> {
  const last = new Map<string, { change: Change; scope: string }>();
  for (const record of records) {
    for (const [i, change] of record.changes.entries()) {
      const key = entityKey(change.entityType, change.entityId);
      last.delete(key);
      last.set(key, { change, scope: record.scopes[i]!.scope });
    }
  }
  const updates = [...last.values()].filter(({ change }) => change.type === 'update');
  const deletes = [...last.values()].filter(({ change }) => change.type === 'delete').map(({ change }) => change);
  if (updates.length > 0) {
    await session.query(
      `INSERT INTO ${NAMES.entities} (entity_type, entity_id, data, scope)
       SELECT * FROM unnest($1::text[], $2::text[], $3::json[], $4::text[])
       ON CONFLICT (entity_type, entity_id) DO UPDATE SET data = EXCLUDED.data, scope = EXCLUDED.scope`,
      [
        updates.map(({ change }) => change.entityType),
        updates.map(({ change }) => change.entityId),
        updates.map(({ change }) => JSON.stringify(change.type === 'update' ? change.data : null)),
        updates.map(({ scope }) => scope),
      ],
    );
  }
  if (deletes.length > 0) {
    await session.query(
      `DELETE FROM ${NAMES.entities} e USING unnest($1::text[], $2::text[]) AS d(entity_type, entity_id)
        WHERE e.entity_type = d.entity_type AND e.entity_id = d.entity_id`,
      [deletes.map((change) => change.entityType), deletes.map((change) => change.entityId)],
    );
  }
}
