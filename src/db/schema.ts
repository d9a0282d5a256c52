/**
 * The IndexedDB schema shared by the worker (which writes entities and the LSN) and the page
 * (which reads entities and writes the outbox).
 */
import { openDatabase, promised, type PromisedDatabase } from './indexed-db.ts';
import type { Change } from '../protocol/change.ts';
import type { LSN } from '../protocol/lsn.ts';
import type { QueuedOperation } from '../protocol/state.ts';

export const DEFAULT_DB_NAME = 'sync-connection';
export const DB_VERSION = 2;

/** An entity as the change store keeps it. */
export interface StoredEntity {
  entityType: string;
  entityId: string;
  data: unknown;
  /** When the server wrote the value, if it said. */
  timestamp?: number;
  /** The LSN of the batch that wrote it, if the batch had one. */
  lsn?: LSN;
}

/** Where the changes up to the resume point are: the built-in `entities`, or the page's own Database. */
export type ResumeStore = 'builtin' | 'page';

/**
 * One commit of the server's changes, kept whole until it is folded into `entities`: a batch costs
 * one record, whatever its size. Each batch keeps its own LSN, which the entities it writes carry.
 */
export interface StoredSegment {
  batches: { changes: Change[]; lsn?: LSN }[];
}

/**
 * Operations stored in one transaction, kept as one outbox record: a burst costs one record, not
 * one each. `ids` lists theirs, for the index that finds an operation's record and refuses an id
 * that is queued already. An acknowledged operation leaves its record; the last one deletes it.
 */
export interface StoredGroup {
  ids: string[];
  operations: QueuedOperation[];
}

export interface MetaValues {
  /** Resume point: every change up to it is in the store `lsnStore` names. Written with its batch. */
  lastLSN: LSN;
  /** The key of the last segment folded into `entities` (and deleted); written with that fold. */
  foldedThrough: number;
  /** Which store `lastLSN` belongs to; absent means `builtin`. */
  lsnStore: ResumeStore;
  clientId: string;
}

export interface SyncDBSchema {
  entities: {
    key: [string, string];
    value: StoredEntity;
    indexes: { byType: string };
  };
  meta: {
    key: keyof MetaValues;
    value: MetaValues[keyof MetaValues];
  };
  outbox: {
    key: number;
    value: StoredGroup;
    indexes: { byId: string };
  };
  /** The server's commits not yet folded into `entities`, in commit order. */
  segments: {
    key: number;
    value: StoredSegment;
  };
}

export type SyncDB = PromisedDatabase<SyncDBSchema>;

export interface OpenOptions {
  /** An older connection (another tab) has not closed yet, so this open waits for it. */
  onBlocked?: () => void;
  /** Another connection wants a newer version; this one has been closed. */
  onBlocking?: () => void;
  /** The browser closed the database abnormally (storage cleared, disk error). */
  onTerminated?: () => void;
}

/**
 * Opens (and creates or upgrades) the database. A connection that blocks another's upgrade
 * closes itself, so upgrades never wait on an old tab.
 */
export async function openSyncDB(name: string, options: OpenOptions = {}): Promise<SyncDB> {
  const db: SyncDB = await openDatabase<SyncDBSchema>(name, DB_VERSION, {
    async upgrade(database, oldVersion, transaction) {
      // Version 1 kept one outbox record per operation, keyed by its id: they become one group.
      let older: QueuedOperation[] = [];
      if (oldVersion === 1 && database.objectStoreNames.contains('outbox')) {
        older = await promised(transaction.objectStore('outbox').getAll() as IDBRequest<QueuedOperation[]>);
        database.deleteObjectStore('outbox');
      }
      if (!database.objectStoreNames.contains('entities')) {
        const entities = database.createObjectStore('entities', {
          keyPath: ['entityType', 'entityId'],
        });
        entities.createIndex('byType', 'entityType');
      }
      if (!database.objectStoreNames.contains('meta')) database.createObjectStore('meta');
      if (!database.objectStoreNames.contains('segments')) database.createObjectStore('segments', { autoIncrement: true });
      if (!database.objectStoreNames.contains('outbox')) {
        const outbox = database.createObjectStore('outbox', { autoIncrement: true });
        outbox.createIndex('byId', 'ids', { unique: true, multiEntry: true });
        const group: StoredGroup = { ids: older.map(({ id }) => id), operations: older };
        if (older.length > 0) await promised(outbox.add(group));
      }
    },
    blocked() {
      options.onBlocked?.();
    },
    blocking() {
      db.close();
      options.onBlocking?.();
    },
    terminated() {
      options.onTerminated?.();
    },
  });
  return db;
}

/**
 * Orders outbox entries: higher priority first, then first queued first; the id orders two tabs'
 * operations queued in the same instant, so that every tab and the worker agree.
 */
export function compareQueued(a: Pick<QueuedOperation, 'id' | 'priority' | 'seq'>, b: Pick<QueuedOperation, 'id' | 'priority' | 'seq'>): number {
  return b.priority - a.priority || a.seq - b.seq || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
