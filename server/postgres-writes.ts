import { isRecord, parseChanges, type Change } from '../src/protocol/change.ts';
import { NAMES } from './postgres-schema.ts';

/** What one write carries from its transaction to the stamper, inside a logical message. */
export interface Write {
  /** Unique per write; lets the writing instance find its record once it is stamped. */
  writeId: string;
  operationId?: string;
  changes: Change[];
}

/** Anything that runs a query: a pool, a client, a client inside a transaction. */
export interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

export function encodeWrite(write: Write): string {
  return JSON.stringify({ w: write.writeId, ...(write.operationId === undefined ? {} : { op: write.operationId }), changes: write.changes });
}

/** Parses a logical message's content; returns the reason when it is not a write. */
export function decodeWrite(content: string): Write | string {
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    return 'not JSON';
  }
  if (!isRecord(value) || typeof value.w !== 'string' || !Array.isArray(value.changes)) return 'not a write';
  const { changes, invalid } = parseChanges(value.changes);
  if (invalid.length > 0 || changes.length === 0) return `invalid changes: ${invalid[0]?.reason ?? 'none'}`;
  if (value.op !== undefined && typeof value.op !== 'string') return 'invalid operation id';
  return value.op === undefined ? { writeId: value.w, changes } : { writeId: value.w, operationId: value.op, changes };
}

// One statement, so one transaction when run on its own: the operation id is claimed (its unique
// key makes a concurrent duplicate wait for the first, then find it) and the changes go into the
// write-ahead log as a transactional logical message, decoded in commit order by the stamper.
const WRITE = `
WITH claimed AS (
  INSERT INTO ${NAMES.writes} (write_id, operation_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING write_id
)
SELECT pg_logical_emit_message(true, '${NAMES.messagePrefix}', $3::text) FROM claimed`;

/** Writes `write`; false when its operation id had been applied already (nothing was written). */
export async function writeRecord(db: Queryable, write: Write): Promise<boolean> {
  const result = await db.query(WRITE, [write.writeId, write.operationId ?? null, encodeWrite(write)]);
  return result.rowCount === 1;
}

/** The write that applied `operationId`, and its record's LSN once it has been stamped. */
export async function findOperation(db: Queryable, operationId: string): Promise<{ writeId: string; lsn: string | null } | undefined> {
  const result = await db.query<{ write_id: string; lsn: string | null }>(
    `SELECT w.write_id, c.lsn::text AS lsn FROM ${NAMES.writes} w
       LEFT JOIN ${NAMES.changeLog} c ON c.write_id = w.write_id
      WHERE w.operation_id = $1`,
    [operationId],
  );
  const row = result.rows[0];
  return row && { writeId: row.write_id, lsn: row.lsn };
}

/** The LSN of a write's record: null while it is not stamped, undefined if it was never committed. */
export async function writeStatus(db: Queryable, writeId: string): Promise<string | null | undefined> {
  const result = await db.query<{ lsn: string | null }>(
    `SELECT c.lsn::text AS lsn FROM ${NAMES.writes} w
       LEFT JOIN ${NAMES.changeLog} c ON c.write_id = w.write_id
      WHERE w.write_id = $1`,
    [writeId],
  );
  return result.rows.length === 0 ? undefined : result.rows[0]!.lsn;
}
