import type pg from 'pg';
import { parseLSN } from '../src/protocol/lsn.ts';

/** The names this store uses in its database. */
export const NAMES = {
  writes: 'sync_writes',
  changeLog: 'sync_change_log',
  entities: 'sync_entities',
  changeScopes: 'sync_change_scopes',
  /** One row: the compaction floor (highest LSN of a dropped delete or move) and the last horizon. */
  compaction: 'sync_compaction',
  pending: 'sync_pending',
  publication: 'sync_connection',
  /** Prefix of the logical messages that carry the writes. */
  messagePrefix: 'sync-connection',
  /** NOTIFY channel: records were stamped; payload: the new head LSN. */
  stamped: 'sync_connection_stamped',
  /** Advisory lock held by the one instance that stamps. */
  stamperLock: 0x73796e63_0001n,
  /** Advisory lock held while the schema is set up. */
  setupLock: 0x73796e63_0002n,
} as const;

/** Replication slots are per cluster, not per database: the slot's name carries the database's. */
export function slotName(database: string): string {
  return `sync_connection_${database.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

const TABLES = `
CREATE TABLE IF NOT EXISTS ${NAMES.writes} (
  write_id uuid PRIMARY KEY,
  operation_id text UNIQUE,
  written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${NAMES.changeLog} (
  lsn pg_lsn PRIMARY KEY,
  write_id uuid NOT NULL UNIQUE,
  operation_id text,
  changes json NOT NULL,
  change_count integer NOT NULL,
  refused text
);
-- Added after the first release of this schema: why the stamper could not apply a write.
ALTER TABLE ${NAMES.changeLog} ADD COLUMN IF NOT EXISTS refused text;
CREATE TABLE IF NOT EXISTS ${NAMES.entities} (
  entity_type text NOT NULL,
  entity_id text NOT NULL,
  data json NOT NULL,
  PRIMARY KEY (entity_type, entity_id)
);
-- Added with scopes: each entity's scope, each record's per-change scopes, the operation's digest,
-- and the scope index a scoped catch-up reads instead of the whole log.
ALTER TABLE ${NAMES.entities} ADD COLUMN IF NOT EXISTS scope text NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS sync_entities_scope ON ${NAMES.entities} (scope, entity_type, entity_id);
ALTER TABLE ${NAMES.changeLog} ADD COLUMN IF NOT EXISTS scopes json;
ALTER TABLE ${NAMES.writes} ADD COLUMN IF NOT EXISTS fingerprint text;
CREATE TABLE IF NOT EXISTS ${NAMES.changeScopes} (
  scope text NOT NULL,
  lsn pg_lsn NOT NULL,
  PRIMARY KEY (scope, lsn)
);
-- Added with compaction: its state, and the LSN of an operation whose record it dropped.
CREATE TABLE IF NOT EXISTS sync_compaction (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  floor pg_lsn NOT NULL DEFAULT '0/0',
  horizon pg_lsn NOT NULL DEFAULT '0/0'
);
INSERT INTO sync_compaction (only_row) VALUES (true) ON CONFLICT DO NOTHING;
ALTER TABLE ${NAMES.writes} ADD COLUMN IF NOT EXISTS compacted_lsn pg_lsn;

-- Added with streaming: each write's message until it is stamped, in the order the writes were
-- made, so that writes committed while the slot was lost can still be stamped.
CREATE TABLE IF NOT EXISTS ${NAMES.pending} (
  write_id uuid PRIMARY KEY,
  seq bigserial NOT NULL,
  content text NOT NULL
);`;

/**
 * Creates what the store needs if it is missing: its tables, a publication without tables (its
 * slot then carries only the logical messages of the writes) and, in a database that has never
 * been written, the permanent logical slot (elsewhere a missing slot is the stamper's to recreate,
 * with the writes it missed). Several instances starting at once take turns. Throws, saying what
 * to change, when the server is not set up for logical decoding.
 */
export async function prepareDatabase(client: pg.Client): Promise<{ slot: string }> {
  const settings = await client.query<{ wal_level: string; database: string }>(
    'SELECT current_setting(\'wal_level\') AS wal_level, current_database() AS database',
  );
  const { wal_level: walLevel, database } = settings.rows[0]!;
  if (walLevel !== 'logical') {
    throw new Error(`PostgreSQL runs with wal_level=${walLevel}; the sync store reads its write-ahead log through logical decoding and needs wal_level=logical (set it in postgresql.conf and restart PostgreSQL)`);
  }
  const slot = slotName(database);
  await client.query('SELECT pg_advisory_lock($1)', [NAMES.setupLock.toString()]);
  try {
    const indexed = await client.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [NAMES.changeScopes]);
    await client.query(TABLES);
    if (indexed.rows[0]?.found === null) {
      // A log written before scopes: every record is in the default scope.
      await client.query(`INSERT INTO ${NAMES.changeScopes} (scope, lsn) SELECT '', lsn FROM ${NAMES.changeLog} WHERE refused IS NULL ON CONFLICT DO NOTHING`);
    }
    const publication = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [NAMES.publication]);
    if (publication.rowCount === 0) await client.query(`CREATE PUBLICATION ${NAMES.publication}`);
    const existing = await client.query<{ plugin: string | null; database: string | null }>(
      'SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const found = existing.rows[0];
    if (!found) {
      const written = await client.query(`SELECT 1 FROM ${NAMES.writes} LIMIT 1`);
      if (written.rows.length === 0) await client.query('SELECT pg_create_logical_replication_slot($1, \'pgoutput\')', [slot]);
    } else if (found.plugin !== 'pgoutput' || found.database !== database) {
      throw new Error(`replication slot ${slot} exists but is not a pgoutput slot of database ${database}`);
    }
    // A database restored into another cluster: that cluster's WAL may be behind the log's LSNs, and
    // every new commit would then look already stamped.
    const positions = await client.query<{ behind: boolean; wal: string; head: string }>(
      `SELECT pg_current_wal_lsn() < coalesce(max(lsn), '0/0') AS behind, pg_current_wal_lsn()::text AS wal,
              coalesce(max(lsn), '0/0')::text AS head FROM ${NAMES.changeLog}`,
    );
    const position = positions.rows[0]!;
    if (position.behind) {
      throw new Error(`the change log ends at ${position.head}, ahead of this cluster's write-ahead log (${position.wal}): the database was restored into another cluster. New commits would look already stamped and never be acknowledged; the LSNs clients hold no longer mean anything here. Start a new deployment (empty tables; clients resync from 0/0)`);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [NAMES.setupLock.toString()]);
  }
  return { slot };
}

/** Where the slot stands: the position it has confirmed, or why it cannot be read. */
export type SlotState = { confirmed: bigint } | { gone: 'missing' | 'invalidated' };

export async function slotState(db: pg.ClientBase, slot: string): Promise<SlotState> {
  const result = await db.query<{ confirmed: string | null; wal_status: string | null }>(
    'SELECT confirmed_flush_lsn::text AS confirmed, wal_status FROM pg_replication_slots WHERE slot_name = $1',
    [slot],
  );
  const row = result.rows[0];
  if (!row) return { gone: 'missing' };
  if (row.wal_status === 'lost') return { gone: 'invalidated' };
  return { confirmed: parseLSN(row.confirmed ?? '0/0') ?? 0n };
}

/** Drops the slot if it is there (invalidated) and creates it anew, starting now. */
export async function recreateSlot(db: pg.ClientBase, slot: string): Promise<void> {
  await db.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  await db.query('SELECT pg_create_logical_replication_slot($1, \'pgoutput\')', [slot]);
}
