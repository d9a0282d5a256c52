import { isRecord } from '../src/protocol/change.ts';
import { parseEdit, type Edit } from './edit.ts';
import { NAMES } from './postgres-schema.ts';

/** What one write carries from its transaction to the stamper, inside a logical message. */
export interface Write {
  /** Unique per write; lets the writing instance find its record once it is stamped. */
  writeId: string;
  operationId?: string;
  /** As the writer asked for them: the stamper merges a patch into the entity's value. */
  changes: Edit[];
  /** The writer's scopes, checked by the stamper in commit order; absent: any. */
  allowedScopes?: string[];
  /** A digest of the operation, kept with its id. */
  fingerprint?: string;
}

/** Anything that runs a query: a pool, a client, a client inside a transaction. */
export interface Queryable {
  query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
}

export function encodeWrite(write: Write): string {
  return JSON.stringify({
    w: write.writeId,
    ...(write.operationId === undefined ? {} : { op: write.operationId }),
    ...(write.allowedScopes === undefined ? {} : { sc: write.allowedScopes }),
    changes: write.changes,
  });
}

/**
 * Most UTF-8 bytes of an operation id, and of an entity's type and id together: each is a key of
 * a B-tree index, whose entries PostgreSQL limits to about 2.7 kB.
 */
export const MAX_KEY_BYTES = 2000;

/** A lone UTF-16 surrogate: the driver would silently store U+FFFD instead. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function badText(what: string, value: string): string | undefined {
  if (value.includes('\u0000')) return `${what} contains a NUL character, which PostgreSQL text cannot hold`;
  if (LONE_SURROGATE.test(value)) return `${what} contains a lone UTF-16 surrogate, which is not valid Unicode`;
  return undefined;
}

/**
 * Why PostgreSQL cannot hold this write, or undefined when it can. The change data needs no check:
 * it is kept as `json` text (escaped by JSON.stringify), never de-escaped by the database.
 */
export function refuseWrite(changes: readonly Edit[], operationId?: string): string | undefined {
  if (operationId !== undefined) {
    const bad = badText('the operation id', operationId);
    if (bad) return bad;
    if (Buffer.byteLength(operationId) > MAX_KEY_BYTES) return `the operation id is longer than ${MAX_KEY_BYTES} bytes`;
  }
  for (const [index, change] of changes.entries()) {
    const bad = badText(`change #${index}'s entityType`, change.entityType) ?? badText(`change #${index}'s entityId`, change.entityId);
    if (bad) return bad;
    if (Buffer.byteLength(change.entityType) + Buffer.byteLength(change.entityId) > MAX_KEY_BYTES) {
      return `change #${index}'s entityType and entityId together are longer than ${MAX_KEY_BYTES} bytes`;
    }
  }
  return undefined;
}

/** The write id of a message that is not a valid write, when it names one (to refuse it by). */
export function salvageWriteId(content: string): { writeId: string; operationId?: string } | undefined {
  try {
    const value: unknown = JSON.parse(content);
    if (!isRecord(value) || typeof value.w !== 'string') return undefined;
    return typeof value.op === 'string' ? { writeId: value.w, operationId: value.op } : { writeId: value.w };
  } catch {
    return undefined;
  }
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
  const changes: Edit[] = [];
  for (const item of value.changes) {
    const edit = parseEdit(item);
    if (typeof edit === 'string') return `invalid changes: ${edit}`;
    changes.push(edit);
  }
  if (changes.length === 0) return 'invalid changes: none';
  if (value.op !== undefined && typeof value.op !== 'string') return 'invalid operation id';
  const allowed: unknown = value.sc;
  if (allowed !== undefined && !(Array.isArray(allowed) && allowed.every((scope) => typeof scope === 'string'))) return 'invalid scopes';
  const write: Write = { writeId: value.w, changes };
  if (value.op !== undefined) write.operationId = value.op;
  if (allowed !== undefined) write.allowedScopes = allowed as string[];
  return write;
}

/**
 * Most writes one transaction carries: a client's writes queued while its previous transaction
 * committed. Each gets a position of its own in the commit record (see the stamper), which is
 * always longer than this.
 */
export const MAX_WRITES_PER_COMMIT = 16;

// One statement, so one transaction when run on its own: each operation id is claimed (its
// unique key makes a concurrent duplicate wait for the first, then find it), each message is kept
// until it is stamped, and the changes go into the write-ahead log as transactional logical
// messages, one per write, in the order given (a sorted subquery is never flattened, and its rows
// are emitted in order), decoded in commit order by the stamper.
const WRITE = `
WITH given AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS w(write_id, operation_id, content, fingerprint, place)
), claimed AS (
  INSERT INTO ${NAMES.writes} (write_id, operation_id, fingerprint)
  SELECT write_id, operation_id, fingerprint FROM given ORDER BY place ON CONFLICT DO NOTHING RETURNING write_id
), kept AS (
  INSERT INTO ${NAMES.pending} (write_id, content)
  SELECT g.write_id, g.content FROM given g JOIN claimed c ON c.write_id = g.write_id ORDER BY g.place RETURNING write_id
)
SELECT ordered.write_id::text AS write_id, pg_logical_emit_message(true, '${NAMES.messagePrefix}', ordered.content) IS NOT NULL AS emitted
  FROM (SELECT g.write_id, g.content FROM given g JOIN kept k ON k.write_id = g.write_id ORDER BY g.place) ordered`;

/** Writes `writes` in one transaction; returns the ids of those written (an operation id applied already writes nothing). */
export async function writeRecords(db: Queryable, writes: readonly Write[]): Promise<Set<string>> {
  const result = await db.query<{ write_id: string }>(WRITE, [
    writes.map((write) => write.writeId),
    writes.map((write) => write.operationId ?? null),
    writes.map((write) => encodeWrite(write)),
    writes.map((write) => write.fingerprint ?? null),
  ]);
  return new Set(result.rows.map((row) => row.write_id));
}

/** Writes `write`; false when its operation id had been applied already (nothing was written). */
export async function writeRecord(db: Queryable, write: Write): Promise<boolean> {
  return (await writeRecords(db, [write])).size === 1;
}

/** Where a committed write stands: its record's LSN once stamped, and why, if it was refused. */
export interface WriteState {
  /** Null while it is not stamped. */
  lsn: string | null;
  /** Set when the stamper could not apply it: a record without changes was logged instead. */
  refused: string | null;
}

/** The write that applied `operationId`, its fingerprint, and its record's LSN once it has been stamped. */
export async function findOperation(db: Queryable, operationId: string): Promise<({ writeId: string; fingerprint: string | null } & WriteState) | undefined> {
  const result = await db.query<{ write_id: string; lsn: string | null; refused: string | null; fingerprint: string | null }>(
    `SELECT w.write_id, w.fingerprint, coalesce(c.lsn, w.compacted_lsn)::text AS lsn, c.refused FROM ${NAMES.writes} w
       LEFT JOIN ${NAMES.changeLog} c ON c.write_id = w.write_id
      WHERE w.operation_id = $1`,
    [operationId],
  );
  const row = result.rows[0];
  return row && { writeId: row.write_id, fingerprint: row.fingerprint, lsn: row.lsn, refused: row.refused };
}

/** Where a write stands; undefined if it was never committed. */
export async function writeStatus(db: Queryable, writeId: string): Promise<WriteState | undefined> {
  const result = await db.query<{ lsn: string | null; refused: string | null }>(
    `SELECT coalesce(c.lsn, w.compacted_lsn)::text AS lsn, c.refused FROM ${NAMES.writes} w
       LEFT JOIN ${NAMES.changeLog} c ON c.write_id = w.write_id
      WHERE w.write_id = $1`,
    [writeId],
  );
  const row = result.rows[0];
  return row && { lsn: row.lsn, refused: row.refused };
}
