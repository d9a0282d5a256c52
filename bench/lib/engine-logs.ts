/**
 * The same log in SQLite (better-sqlite3 12) and LMDB (lmdb), for the store benchmark, when they
 * can be loaded: they are not dependencies of this project (see the store's commit for why).
 * Install them beside it to include them: `npm install --no-save better-sqlite3@12 lmdb`, or point
 * BENCH_ENGINES at a node_modules folder that has them.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(process.env.BENCH_ENGINES ? join(process.env.BENCH_ENGINES, 'x.js') : import.meta.url);

interface SqliteStatement { run(...values: unknown[]): unknown; iterate(...values: unknown[]): Iterable<Record<string, unknown>> }
interface SqliteDatabase {
  pragma(text: string): unknown;
  exec(text: string): void;
  prepare(text: string): SqliteStatement;
  transaction(fn: () => void): () => void;
  close(): void;
}
interface LmdbDatabase {
  put(key: number, value: Buffer): Promise<boolean>;
  getRange(options: { start: number; limit: number }): Iterable<{ key: number; value: Buffer }>;
  transaction(fn: () => void): Promise<unknown>;
  flushed: Promise<void>;
  close(): Promise<void>;
}

/** One durable log kept by an engine: written in batches, read back in pages. */
export interface EngineLog {
  write(records: readonly Buffer[]): Promise<void>;
  /** The records with a key above `after`, at most `limit`. */
  page(after: number, limit: number): { key: number; value: Buffer }[];
  close(): Promise<void>;
}

export type EngineName = 'SQLite' | 'LMDB';

/** Opens (creating) the engine's log in `dir`, or undefined when the engine cannot be loaded. */
export function openEngineLog(name: EngineName, dir: string): EngineLog | undefined {
  try {
    return name === 'SQLite' ? openSqlite(dir) : openLmdb(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

function openSqlite(dir: string): EngineLog {
  const Database = require('better-sqlite3') as new (path: string) => SqliteDatabase;
  const db = new Database(join(dir, 'log.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS log (lsn INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO log (lsn, body) VALUES (?, ?)');
  const select = db.prepare('SELECT lsn, body FROM log WHERE lsn > ? ORDER BY lsn LIMIT ?');
  let next = 1;
  return {
    async write(records) {
      db.transaction(() => {
        for (const record of records) insert.run(next++, record);
      })();
    },
    page(after, limit) {
      return [...select.iterate(after, limit)].map((row) => ({ key: Number(row.lsn), value: row.body as Buffer }));
    },
    async close() {
      db.close();
    },
  };
}

function openLmdb(dir: string): EngineLog {
  const { open } = require('lmdb') as { open(options: { path: string; keyEncoding: string; encoding: string }): LmdbDatabase };
  const db = open({ path: join(dir, 'lmdb'), keyEncoding: 'uint32', encoding: 'binary' });
  let next = 1;
  return {
    async write(records) {
      for (const record of records) void db.put(next++, record);
      await db.flushed;
    },
    page(after, limit) {
      return [...db.getRange({ start: after + 1, limit })];
    },
    close: () => db.close(),
  };
}
