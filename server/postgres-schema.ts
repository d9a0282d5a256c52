import type pg from 'pg';

/** The names this store uses in its database. */
export const NAMES = {
  writes: 'sync_writes',
  changeLog: 'sync_change_log',
  entities: 'sync_entities',
  changeScopes: 'sync_change_scopes',
  /** One row: the compaction floor (highest LSN of a dropped delete or move) and the last horizon. */
  compaction: 'sync_compaction',
  publication: 'sync_connection',
  /** Prefix of the logical messages that carry the writes. */
  messagePrefix: 'sync-connection',
  /** NOTIFY channel: a write committed, the stamper has work. */
  written: 'sync_connection_written',
  /** NOTIFY channel: records were stamped; payload: the new head LSN. */
  stamped: 'sync_connection_stamped',
  /** Advisory lock held by the one instance that stamps. */
  stamperLock: 0x73796e63_0001n,
  /** Advisory lock held while the schema is set up. */
  setupLock: 0x73796e63_0002n,
} as const;

/** Why the store cannot go on without its slot, and what an operator may do. */
export function slotLost(slot: string, what: string): string {
  return `replication slot ${slot} ${what}, but the change log has records: writes committed since the last stamp can no longer be read and would never be acknowledged. ` +
    `If losing them is acceptable, create the slot again (SELECT pg_create_logical_replication_slot('${slot}', 'pgoutput')) and restart`;
}

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
ALTER TABLE ${NAMES.writes} ADD COLUMN IF NOT EXISTS compacted_lsn pg_lsn;`;

/**
 * Creates what the store needs if it is missing: three tables, a publication without tables (its
 * slot then carries only the logical messages of the writes) and the permanent logical slot.
 * Several instances starting at once take turns. Throws, saying what to change, when the server
 * is not set up for logical decoding.
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
    const existing = await client.query<{ plugin: string | null; database: string | null; wal_status: string | null }>(
      'SELECT plugin, database, wal_status FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const found = existing.rows[0];
    const logged = await client.query(`SELECT 1 FROM ${NAMES.changeLog} LIMIT 1`);
    if (!found && logged.rows.length > 0) {
      // The slot existed (there are records): it was dropped, or the database was restored without
      // it. A new slot starts at "now": writes committed since the last stamp would never be stamped.
      throw new Error(`${slotLost(slot, 'is missing')}`);
    }
    if (!found) {
      await client.query('SELECT pg_create_logical_replication_slot($1, \'pgoutput\')', [slot]);
    } else if (found.plugin !== 'pgoutput' || found.database !== database) {
      throw new Error(`replication slot ${slot} exists but is not a pgoutput slot of database ${database}`);
    } else if (found.wal_status === 'lost') {
      throw new Error(slotLost(slot, 'was invalidated (its WAL was removed, e.g. by max_slot_wal_keep_size)'));
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
