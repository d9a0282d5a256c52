import type pg from 'pg';
import type { Change } from '../src/protocol/change.ts';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { decodeTransactions } from './pgoutput.ts';
import { NAMES } from './postgres-schema.ts';
import { decodeWrite, type Write } from './postgres-writes.ts';

export interface StampOptions {
  slot: string;
  /** Most decoded rows to read in one pass (whole transactions; a pass may end a little past it). */
  limit: number;
  /** Tests: runs after the stamp has committed and before the slot is advanced. */
  afterCommit?: () => void | Promise<void>;
}

export interface StampResult {
  /** Records newly added to the change log. */
  stamped: number;
  /** True when the pass hit its limit: more may be waiting. */
  more: boolean;
}

interface PendingRecord {
  lsn: bigint;
  write: Write;
}

/**
 * One pass of the stamper, on the session that holds the stamper lock: reads the committed writes
 * from the replication slot in commit order, adds each as a record whose LSN is its commit's end
 * LSN to the change log, applies its changes to the entities, all in one transaction, and then
 * advances the slot. Repeating a pass whose slot advance was lost (a crash in between) adds
 * nothing twice: records at or below the log's head are known already.
 */
export async function stampOnce(session: pg.Client, options: StampOptions): Promise<StampResult> {
  const peeked = await session.query<{ data: Buffer }>(
    `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2,
       'proto_version', '1', 'publication_names', '${NAMES.publication}', 'messages', 'true')`,
    [options.slot, options.limit],
  );
  const transactions = decodeTransactions(peeked.rows.map((row) => row.data));
  const last = transactions.at(-1);
  if (!last) return { stamped: 0, more: false };
  const records: PendingRecord[] = [];
  for (const transaction of transactions) {
    const writes: Write[] = [];
    for (const message of transaction.messages) {
      if (message.prefix !== NAMES.messagePrefix) continue;
      const write = decodeWrite(message.content.toString('utf8'));
      if (typeof write === 'string') process.emitWarning(`sync store: skipped a logical message at ${formatLSN(transaction.endLsn)}: ${write}`);
      else writes.push(write);
    }
    const first = writes[0];
    if (!first) continue;
    // The store writes one message per transaction; should a transaction carry more, it is still
    // one commit, so one record.
    records.push({ lsn: transaction.endLsn, write: { ...first, changes: writes.flatMap((write) => write.changes) } });
  }

  let stamped = 0;
  await session.query('BEGIN');
  try {
    const head = await session.query<{ head: string }>(`SELECT coalesce(max(lsn), '0/0')::text AS head FROM ${NAMES.changeLog}`);
    const known = parseLSN(head.rows[0]!.head) ?? 0n;
    const fresh = records.filter((record) => record.lsn > known);
    if (fresh.length > 0) {
      await insertRecords(session, fresh);
      await applyEntities(session, fresh.flatMap((record) => record.write.changes));
      await session.query('SELECT pg_notify($1, $2)', [NAMES.stamped, formatLSN(fresh.at(-1)!.lsn)]);
    }
    await session.query('COMMIT');
    stamped = fresh.length;
  } catch (error) {
    await session.query('ROLLBACK').catch(() => {});
    throw error;
  }
  await options.afterCommit?.();
  await session.query('SELECT pg_replication_slot_advance($1, $2::pg_lsn)', [options.slot, formatLSN(last.endLsn)]);
  return { stamped, more: peeked.rows.length >= options.limit };
}

async function insertRecords(session: pg.Client, records: readonly PendingRecord[]): Promise<void> {
  await session.query(
    `INSERT INTO ${NAMES.changeLog} (lsn, write_id, operation_id, changes, change_count)
     SELECT * FROM unnest($1::pg_lsn[], $2::uuid[], $3::text[], $4::json[], $5::integer[])
     ON CONFLICT DO NOTHING`,
    [
      records.map((record) => formatLSN(record.lsn)),
      records.map((record) => record.write.writeId),
      records.map((record) => record.write.operationId ?? null),
      records.map((record) => JSON.stringify(record.write.changes)),
      records.map((record) => record.write.changes.length),
    ],
  );
}

/** Applies changes in order: per entity the last one wins, so each entity is written once. */
async function applyEntities(session: pg.Client, changes: readonly Change[]): Promise<void> {
  const last = new Map<string, Change>();
  for (const change of changes) {
    const key = `${change.entityType}\u0000${change.entityId}`;
    last.delete(key);
    last.set(key, change);
  }
  const updates = [...last.values()].filter((change) => change.type === 'update');
  const deletes = [...last.values()].filter((change) => change.type === 'delete');
  if (updates.length > 0) {
    await session.query(
      `INSERT INTO ${NAMES.entities} (entity_type, entity_id, data)
       SELECT * FROM unnest($1::text[], $2::text[], $3::json[])
       ON CONFLICT (entity_type, entity_id) DO UPDATE SET data = EXCLUDED.data`,
      [
        updates.map((change) => change.entityType),
        updates.map((change) => change.entityId),
        updates.map((change) => JSON.stringify(change.type === 'update' ? change.data : null)),
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
