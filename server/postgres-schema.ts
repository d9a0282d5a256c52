import type pg from 'pg';

/** The names this store uses in its database. */
export const NAMES = {
  writes: 'sync_writes',
  changeLog: 'sync_change_log',
  entities: 'sync_entities',
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
);`;

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
    await client.query(TABLES);
    const publication = await client.query('SELECT 1 FROM pg_publication WHERE pubname = $1', [NAMES.publication]);
    if (publication.rowCount === 0) await client.query(`CREATE PUBLICATION ${NAMES.publication}`);
    const existing = await client.query<{ plugin: string | null; database: string | null }>(
      'SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    const found = existing.rows[0];
    if (!found) {
      await client.query('SELECT pg_create_logical_replication_slot($1, \'pgoutput\')', [slot]);
    } else if (found.plugin !== 'pgoutput' || found.database !== database) {
      throw new Error(`replication slot ${slot} exists but is not a pgoutput slot of database ${database}`);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [NAMES.setupLock.toString()]);
  }
  return { slot };
}
