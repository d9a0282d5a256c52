import type pg from 'pg';
import { parseChanges } from '../src/protocol/change.ts';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { NAMES } from './postgres-schema.ts';
import type { ChangeScope } from './scopes.ts';
import type { Queryable } from './postgres-writes.ts';
import {
  InvalidCursorError,
  LogCompactedError,
  missedRemovals,
  PAGE_BYTES,
  type EntityPage,
  type PageOptions,
  type ReadOptions,
  type ScopedEntity,
  type StoreStats,
  type StoredRecord,
} from './sync-store.ts';

/** Most rows one read of the change log fetches. */
export const PAGE_ROWS = 500;

export interface LogRow {
  lsn: string;
  write_id: string;
  operation_id: string | null;
  changes: unknown;
  refused: string | null;
  scopes: unknown;
}

const LOG_COLUMNS = 'lsn::text AS lsn, write_id, operation_id, changes, refused, scopes';
// An ORDER BY naming `lsn` alone would sort by that text output column ('1/13C58' before
// '1/46F0', '0/100' before '0/FF'), so it names the table's pg_lsn column.

export function toRecord(row: LogRow): StoredRecord {
  const position = parseLSN(row.lsn);
  if (position === undefined) throw new Error(`malformed LSN ${row.lsn} in the change log`);
  const { changes } = parseChanges(Array.isArray(row.changes) ? row.changes : []);
  const record: StoredRecord = { lsn: formatLSN(position), position, changes };
  if (row.operation_id !== null) record.operationId = row.operation_id;
  const scopes = parseScopes(row.scopes, changes.length);
  if (scopes) record.scopes = scopes;
  return record;
}

/** The per-change scopes the stamper stored (`[scope, before?]` each); undefined when none or unreadable. */
function parseScopes(value: unknown, count: number): ChangeScope[] | undefined {
  if (!Array.isArray(value) || value.length !== count) return undefined;
  const scopes: ChangeScope[] = [];
  for (const item of value) {
    if (!Array.isArray(item) || typeof item[0] !== 'string') return undefined;
    scopes.push(typeof item[1] === 'string' ? { scope: item[0], before: item[1] } : { scope: item[0] });
  }
  return scopes;
}

/** `scopes` as the change log keeps them; null when every change is in the default scope. */
export function scopesColumn(scopes: readonly ChangeScope[]): string[][] | null {
  if (scopes.every((scope) => scope.scope === '' && scope.before === undefined)) return null;
  return scopes.map(({ scope, before }) => (before === undefined ? [scope] : [scope, before]));
}

export async function readHead(db: Queryable): Promise<bigint> {
  const result = await db.query<{ head: string }>(`SELECT coalesce(max(lsn), '0/0')::text AS head FROM ${NAMES.changeLog}`);
  return parseLSN(result.rows[0]!.head) ?? 0n;
}

/** The rows after `after` (any, refused ones included), for announcing them. */
export async function rowsAfter(db: Queryable, after: bigint): Promise<LogRow[]> {
  const result = await db.query<LogRow>(
    `SELECT ${LOG_COLUMNS} FROM ${NAMES.changeLog} WHERE lsn > $1 ORDER BY ${NAMES.changeLog}.lsn LIMIT ${PAGE_ROWS}`,
    [formatLSN(after)],
  );
  return result.rows;
}

/** One page of records after `after`: bounded in rows, changes and (by the size of their JSON) bytes. */
export async function readChanges(db: Queryable, after: bigint, { until, maxChanges, maxBytes = PAGE_BYTES, scopes, floor: known }: ReadOptions): Promise<StoredRecord[]> {
  if (until <= after) return [];
  // With scopes, the records come from the scope index: each scope's entries in LSN order, at
  // most a page of them, never a scan of the log.
  const where = scopes === undefined ? 'lsn > $1 AND lsn <= $2' : `lsn IN (
         SELECT DISTINCT found.lsn FROM unnest($5::text[]) AS wanted(scope), LATERAL (
           SELECT s.lsn FROM ${NAMES.changeScopes} s WHERE s.scope = wanted.scope AND s.lsn > $1 AND s.lsn <= $2 ORDER BY s.lsn LIMIT $3
         ) found ORDER BY found.lsn LIMIT $3)`;
  // The running size is summed in the database, so a page of huge records is never fetched whole.
  // The compaction floor is read in the same statement, so in the same snapshot as the page. The
  // page is ordered by its pg_lsn `position`: its `lsn` is text, whose order is not the log's.
  const result = await db.query<(LogRow | { [K in keyof LogRow]: null }) & { floor: string }>(
    `SELECT f.floor::text AS floor, page.* FROM ${NAMES.compaction} f LEFT JOIN (SELECT ${LOG_COLUMNS}, lsn AS position FROM (
       SELECT *, sum(octet_length(changes::text)) OVER (ORDER BY lsn) AS running FROM ${NAMES.changeLog}
        WHERE ${where} AND refused IS NULL ORDER BY lsn LIMIT $3
     ) sized WHERE running - octet_length(changes::text) < $4) page ON true ORDER BY page.position`,
    [formatLSN(after), formatLSN(until), Math.max(1, Math.min(maxChanges, PAGE_ROWS)), maxBytes, ...(scopes === undefined ? [] : [scopes])],
  );
  const floor = parseLSN(result.rows[0]?.floor ?? '0/0') ?? 0n;
  if (missedRemovals(after, floor, known)) throw new LogCompactedError(after, floor);
  const records: StoredRecord[] = [];
  let count = 0;
  for (const row of result.rows) {
    if (row.lsn === null) continue;
    const record = toRecord(row);
    if (records.length > 0 && count + record.changes.length > maxChanges) break;
    records.push(record);
    count += record.changes.length;
  }
  return records;
}

export async function readCompactionFloor(db: Queryable): Promise<bigint> {
  const result = await db.query<{ floor: string }>(`SELECT floor::text AS floor FROM ${NAMES.compaction}`);
  return parseLSN(result.rows[0]?.floor ?? '0/0') ?? 0n;
}

export async function countChanges(db: Queryable, after: bigint, until: bigint, scopes?: readonly string[]): Promise<number> {
  if (until <= after) return 0;
  if (scopes !== undefined) {
    const scoped = await db.query<{ count: string }>(
      `SELECT count(*)::text AS count FROM ${NAMES.changeScopes} WHERE scope = ANY($3::text[]) AND lsn > $1 AND lsn <= $2`,
      [formatLSN(after), formatLSN(until), scopes],
    );
    return Number(scoped.rows[0]!.count);
  }
  const result = await db.query<{ count: string }>(
    `SELECT coalesce(sum(change_count), 0)::text AS count FROM ${NAMES.changeLog} WHERE lsn > $1 AND lsn <= $2`,
    [formatLSN(after), formatLSN(until)],
  );
  return Number(result.rows[0]!.count);
}

/**
 * One page of entities in (entity type, entity id) order after the cursor (those two, as JSON in
 * base64url), read in one snapshot with the log's head: the stamper changes both in one
 * transaction. Bounded by `limit` and, by the size of their JSON, PAGE_BYTES.
 */
export async function readEntityPage(client: pg.PoolClient, { limit, after, scopes }: PageOptions): Promise<EntityPage> {
  const from = after === undefined ? undefined : parseCursor(after);
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const head = await readHead(client);
  const rows = await client.query<{ entity_type: string; entity_id: string; data: unknown; fetched: string }>(
    `SELECT entity_type, entity_id, data, fetched FROM (
       SELECT entity_type, entity_id, data, count(*) OVER () AS fetched,
              sum(octet_length(data::text)) OVER (ORDER BY entity_type, entity_id) - octet_length(data::text) AS before
         FROM (SELECT * FROM ${NAMES.entities} WHERE ($1::boolean OR (entity_type, entity_id) > ($2, $3))
                  AND ($6::text[] IS NULL OR scope = ANY($6::text[]))
                ORDER BY entity_type, entity_id LIMIT $4 + 1) fetched_rows
     ) page WHERE before < $5 ORDER BY entity_type, entity_id`,
    [from === undefined, from?.[0] ?? '', from?.[1] ?? '', limit, PAGE_BYTES, scopes ?? null],
  );
  await client.query('COMMIT');
  const inPage = rows.rows.slice(0, limit);
  const entities = inPage.map((row) => ({ entityType: row.entity_type, entityId: row.entity_id, data: row.data }));
  const page: EntityPage = { lsn: formatLSN(head), entities };
  const last = entities.at(-1);
  if (last && Number(rows.rows[0]!.fetched) > entities.length) {
    page.next = Buffer.from(JSON.stringify([last.entityType, last.entityId])).toString('base64url');
  }
  return page;
}

/** One entity's stored value and scope (as of the last stamp). */
export async function readEntity(db: Queryable, entityType: string, entityId: string): Promise<ScopedEntity | undefined> {
  const result = await db.query<{ data: unknown; scope: string }>(
    `SELECT data, scope FROM ${NAMES.entities} WHERE entity_type = $1 AND entity_id = $2`,
    [entityType, entityId],
  );
  const row = result.rows[0];
  return row && { entityType, entityId, data: row.data, scope: row.scope };
}

function parseCursor(cursor: string): [string, string] {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new InvalidCursorError('malformed cursor');
  }
  if (!Array.isArray(value) || value.length !== 2 || typeof value[0] !== 'string' || typeof value[1] !== 'string') {
    throw new InvalidCursorError('malformed cursor');
  }
  return [value[0], value[1]];
}

export async function readStats(db: Queryable): Promise<StoreStats> {
  const result = await db.query<{ lsn: string; records: string; changes: string; entities: string; operations: string }>(
    `SELECT coalesce((SELECT max(lsn) FROM ${NAMES.changeLog}), '0/0')::text AS lsn,
            (SELECT count(*) FROM ${NAMES.changeLog})::text AS records,
            (SELECT coalesce(sum(change_count), 0) FROM ${NAMES.changeLog})::text AS changes,
            (SELECT count(*) FROM ${NAMES.entities})::text AS entities,
            (SELECT count(operation_id) FROM ${NAMES.writes})::text AS operations`,
  );
  const row = result.rows[0]!;
  return {
    lsn: row.lsn,
    records: Number(row.records),
    changes: Number(row.changes),
    entities: Number(row.entities),
    operationsApplied: Number(row.operations),
  };
}
