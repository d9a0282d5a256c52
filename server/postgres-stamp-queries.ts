import type pg from 'pg';
import type { Change } from '../src/protocol/change.ts';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { entityKey, type Edit } from './edit.ts';
import { encodeAnnouncement } from './postgres-announcement.ts';
import { scopesColumn, type LogRow } from './postgres-reads.ts';
import { NAMES } from './postgres-schema.ts';
import { touchedScopes, type ChangeScope } from './scopes.ts';

/** A write ready to be logged: its changes merged and scoped, or why it is refused. */
export interface StampRecord {
  lsn: bigint;
  writeId: string;
  operationId?: string;
  /** The write's changes with every patch merged: what the log keeps and clients get. */
  changes: Change[];
  /** Each change's scope, in order. */
  scopes: ChangeScope[];
  /** Set when the write is logged as refused: no changes, only why. */
  refused?: string;
}

/** What the stamper needs to know before it stamps: the log's head, which writes have records, the entities the edits touch. */
export interface Known {
  head: bigint;
  stamped: Set<string>;
  entities: Map<string, { data: unknown; scope: string }>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The ids that can be looked up (anything else names no write the store made). */
export function writeIds(ids: readonly string[]): string[] {
  return [...new Set(ids.filter((id) => UUID.test(id)))];
}

/**
 * One query: the head, which of `ids` have a record, and the stored value and scope of each entity
 * `edits` touch, each looked up by its key (a join the planner may turn into a scan of every entity
 * while the table's statistics are behind, as they are under a burst of new entities).
 */
export async function readKnown(session: pg.ClientBase, ids: readonly string[], edits: readonly Edit[]): Promise<Known> {
  const keys = new Map(edits.map((edit) => [entityKey(edit.entityType, edit.entityId), edit] as const));
  const result = await session.query<{ head: string; stamped: string[]; entities: [string, string, unknown, string][] | null }>(
    `SELECT coalesce((SELECT max(lsn) FROM ${NAMES.changeLog}), '0/0')::text AS head,
            ARRAY(SELECT write_id::text FROM ${NAMES.changeLog} WHERE write_id = ANY($1::uuid[])
                  UNION SELECT write_id::text FROM ${NAMES.writes} WHERE write_id = ANY($1::uuid[]) AND compacted_lsn IS NOT NULL) AS stamped,
            (SELECT json_agg(json_build_array(k.entity_type, k.entity_id, e.data, e.scope))
               FROM unnest($2::text[], $3::text[]) AS k(entity_type, entity_id)
               CROSS JOIN LATERAL (SELECT data, scope FROM ${NAMES.entities}
                 WHERE entity_type = k.entity_type AND entity_id = k.entity_id LIMIT 1) e) AS entities`,
    [writeIds(ids), [...keys.values()].map((edit) => edit.entityType), [...keys.values()].map((edit) => edit.entityId)],
  );
  const row = result.rows[0]!;
  const entities = new Map<string, { data: unknown; scope: string }>();
  for (const [entityType, entityId, data, scope] of row.entities ?? []) entities.set(entityKey(entityType, entityId), { data, scope });
  return { head: parseLSN(row.head) ?? 0n, stamped: new Set(row.stamped), entities };
}

/**
 * One statement, so atomic on its own: adds `records` to the change log (and the scope index),
 * applies their changes to the entities (per entity the last one wins, so each is written once),
 * forgets the kept messages of `forget`, and NOTIFYs `announce` as the new head if given; with
 * `after` (the head they follow: `records` are all the log has after it), the notification
 * carries them too when they fit.
 */
export async function writeStamp(session: pg.ClientBase, records: readonly StampRecord[], forget: readonly string[], announce?: bigint, after?: bigint): Promise<void> {
  const last = new Map<string, { change: Change; scope: string }>();
  for (const record of records) {
    if (record.refused !== undefined) continue;
    for (const [i, change] of record.changes.entries()) {
      const key = entityKey(change.entityType, change.entityId);
      last.delete(key);
      last.set(key, { change, scope: record.scopes[i]!.scope });
    }
  }
  const updates = [...last.values()].filter(({ change }) => change.type === 'update');
  const deletes = [...last.values()].filter(({ change }) => change.type === 'delete').map(({ change }) => change);
  const index = records.flatMap((record) => (record.refused === undefined ? touchedScopes(record.scopes).map((scope) => [scope, formatLSN(record.lsn)] as const) : []));
  // Each record as the log keeps it, and as a server reads it back.
  const rows = records.map((record): LogRow => ({
    lsn: formatLSN(record.lsn),
    write_id: record.writeId,
    operation_id: record.refused === undefined ? record.operationId ?? null : safeText(record.operationId),
    changes: record.refused === undefined ? record.changes : [],
    refused: record.refused === undefined ? null : record.refused.replaceAll('\u0000', '\\0'),
    scopes: record.refused === undefined ? scopesColumn(record.scopes) : null,
  }));
  await session.query(
    `WITH logged AS (
       INSERT INTO ${NAMES.changeLog} (lsn, write_id, operation_id, changes, change_count, scopes, refused)
       SELECT * FROM unnest($1::pg_lsn[], $2::uuid[], $3::text[], $4::json[], $5::integer[], $6::json[], $7::text[])
       ON CONFLICT DO NOTHING
     ), indexed AS (
       INSERT INTO ${NAMES.changeScopes} (scope, lsn) SELECT * FROM unnest($8::text[], $9::pg_lsn[]) ON CONFLICT DO NOTHING
     ), upserted AS (
       INSERT INTO ${NAMES.entities} (entity_type, entity_id, data, scope)
       SELECT * FROM unnest($10::text[], $11::text[], $12::json[], $13::text[])
       ON CONFLICT (entity_type, entity_id) DO UPDATE SET data = EXCLUDED.data, scope = EXCLUDED.scope
     ), deleted AS (
       DELETE FROM ${NAMES.entities} e USING unnest($14::text[], $15::text[]) AS d(entity_type, entity_id)
        WHERE e.entity_type = d.entity_type AND e.entity_id = d.entity_id
     ), forgotten AS (
       DELETE FROM ${NAMES.pending} WHERE write_id = ANY($16::uuid[])
     )
     SELECT pg_notify($17, $18) WHERE $18::text IS NOT NULL`,
    [
      rows.map((row) => row.lsn),
      rows.map((row) => row.write_id),
      rows.map((row) => row.operation_id),
      rows.map((row) => JSON.stringify(row.changes)),
      records.map((record) => (record.refused === undefined ? record.changes.length : 0)),
      rows.map((row) => (row.scopes === null ? null : JSON.stringify(row.scopes))),
      rows.map((row) => row.refused),
      index.map(([scope]) => scope),
      index.map(([, lsn]) => lsn),
      updates.map(({ change }) => change.entityType),
      updates.map(({ change }) => change.entityId),
      updates.map(({ change }) => JSON.stringify(change.type === 'update' ? change.data : null)),
      updates.map(({ scope }) => scope),
      deletes.map((change) => change.entityType),
      deletes.map((change) => change.entityId),
      writeIds(forget),
      NAMES.stamped,
      announce === undefined ? null : encodeAnnouncement(announce, after === undefined ? undefined : { after, rows }),
    ],
  );
}

/** An operation id a refused record can keep (PostgreSQL text cannot hold a NUL). */
function safeText(value: string | undefined): string | null {
  return value !== undefined && !value.includes('\u0000') ? value : null;
}
