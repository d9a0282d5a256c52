import type pg from 'pg';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { NAMES } from './postgres-schema.ts';
import type { CompactionReport } from './sync-store.ts';

/** Advisory lock held by the one instance compacting (others wait for it). */
const COMPACTION_LOCK = 0x73796e63_0003n;

/**
 * Compacts the change log at or below `horizon` in one transaction: each entity keeps its latest
 * change; deletes and moves out of a scope stay while younger than `keepRemovalsSince` (ms), and
 * the floor rises to the highest one dropped. Records left without changes go (their operation
 * ids stay applied at their LSN in `compacted_lsn`); records left with fewer are rewritten, with
 * their scope index. The last record of the log is never touched, so the head stays. Instances
 * compacting at once take turns; writes and stamps go on meanwhile (they only add later rows).
 */
export async function compactLog(client: pg.PoolClient, horizon: bigint, keepRemovalsSince: number): Promise<CompactionReport> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [COMPACTION_LOCK.toString()]);
    const before = await client.query<{ changes: string }>(`SELECT coalesce(sum(change_count), 0)::text AS changes FROM ${NAMES.changeLog}`);
    await client.query(`CREATE TEMP TABLE compaction_items ON COMMIT DROP AS
      WITH items AS (
        SELECT c.lsn, e.i, e.item, e.item->>'entityType' AS entity_type, e.item->>'entityId' AS entity_id,
               e.item->>'type' = 'update' AS is_update, (e.item->>'timestamp')::float8 AS ts,
               coalesce(c.scopes->(e.i::int - 1)->>0, '') AS scope, c.scopes->(e.i::int - 1)->>1 AS scope_before,
               c.scopes->(e.i::int - 1) AS scope_item
          FROM ${NAMES.changeLog} c, json_array_elements(c.changes) WITH ORDINALITY AS e(item, i)
         WHERE c.lsn <= $1 AND c.lsn < (SELECT max(lsn) FROM ${NAMES.changeLog}) AND c.refused IS NULL
      ), ranked AS (
        SELECT *, row_number() OVER (PARTITION BY entity_type, entity_id ORDER BY lsn DESC, i DESC) = 1 AS latest FROM items
      )
      SELECT *, (latest AND is_update) OR ((NOT is_update OR scope_before IS NOT NULL) AND coalesce(ts, '-infinity') >= $2) AS keep,
             NOT is_update OR scope_before IS NOT NULL AS removal
        FROM ranked`, [formatLSN(horizon), keepRemovalsSince]);
    const dropped = await client.query<{ floor: string | null; removals: string }>(
      `SELECT max(lsn)::text AS floor, count(*)::text AS removals FROM compaction_items WHERE removal AND NOT keep`,
    );
    await client.query(`CREATE TEMP TABLE compaction_records ON COMMIT DROP AS
      SELECT lsn, count(*) FILTER (WHERE keep) AS kept, count(*) AS total FROM compaction_items GROUP BY lsn HAVING count(*) FILTER (WHERE NOT keep) > 0`);
    await client.query(`UPDATE ${NAMES.writes} w SET compacted_lsn = c.lsn FROM ${NAMES.changeLog} c, compaction_records r
      WHERE r.kept = 0 AND c.lsn = r.lsn AND w.write_id = c.write_id`);
    await client.query(`DELETE FROM ${NAMES.changeScopes} s USING compaction_records r WHERE s.lsn = r.lsn`);
    await client.query(`DELETE FROM ${NAMES.changeLog} c USING compaction_records r WHERE r.kept = 0 AND c.lsn = r.lsn`);
    await client.query(`UPDATE ${NAMES.changeLog} c SET
        changes = k.changes, change_count = k.kept,
        scopes = CASE WHEN k.scoped THEN k.scopes END
      FROM (SELECT lsn, json_agg(item ORDER BY i) AS changes, count(*) AS kept, bool_or(scope_item IS NOT NULL) AS scoped,
                   json_agg(scope_item ORDER BY i) AS scopes
              FROM compaction_items WHERE keep AND lsn IN (SELECT lsn FROM compaction_records WHERE kept > 0) GROUP BY lsn) k
     WHERE c.lsn = k.lsn`);
    await client.query(`INSERT INTO ${NAMES.changeScopes} (scope, lsn)
      SELECT DISTINCT s.scope, i.lsn FROM compaction_items i
        CROSS JOIN LATERAL (VALUES (i.scope), (i.scope_before)) AS s(scope)
       WHERE i.keep AND s.scope IS NOT NULL AND i.lsn IN (SELECT lsn FROM compaction_records WHERE kept > 0)
      ON CONFLICT DO NOTHING`);
    const state = await client.query<{ floor: string; horizon: string }>(
      `UPDATE ${NAMES.compaction} SET floor = greatest(floor, coalesce($1::pg_lsn, '0/0')), horizon = greatest(horizon, $2::pg_lsn)
       RETURNING floor::text AS floor, horizon::text AS horizon`,
      [dropped.rows[0]!.floor, formatLSN(horizon)],
    );
    const after = await client.query<{ changes: string }>(`SELECT coalesce(sum(change_count), 0)::text AS changes FROM ${NAMES.changeLog}`);
    const rewritten = await client.query<{ records: string }>('SELECT count(*)::text AS records FROM compaction_records');
    await client.query('COMMIT');
    return {
      horizon: formatLSN(horizon),
      floor: formatLSN(parseLSN(state.rows[0]!.floor) ?? 0n),
      changesBefore: Number(before.rows[0]!.changes),
      changesAfter: Number(after.rows[0]!.changes),
      removalsDropped: Number(dropped.rows[0]!.removals),
      compacted: Number(rewritten.rows[0]!.records) > 0,
    };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
