import type { ChangeBatch } from '../protocol/worker-messages.ts';
import { errorMessage } from '../protocol/errors.ts';

/** What a {@link Database} transaction offers the client: one call per change. */
export interface DatabaseTransaction {
  /**
   * Creates or replaces one entity. `timestamp` is the server's, in milliseconds since the epoch,
   * or the time the change arrived when the server sent none.
   */
  upsertEntity(entityType: string, entityId: string, data: unknown, timestamp: number): Promise<void> | void;
  deleteEntity(entityType: string, entityId: string, timestamp: number): Promise<void> | void;
}

/**
 * An app's own store for the server's changes, in place of the built-in IndexedDB store.
 * `transaction` runs `work` as one transaction: it commits when the promise `work` returns
 * resolves, and rolls back (and rejects) when it rejects.
 */
export interface Database {
  transaction<T>(work: (tx: DatabaseTransaction) => Promise<T>): Promise<T>;
}

/** The page's answer to one `apply`: how many batches were committed, and why the next was not. */
export interface ApplyAnswer {
  count: number;
  error?: string;
}

export function isDatabase(value: unknown): value is Database {
  return typeof value === 'object' && value !== null && typeof (value as Database).transaction === 'function';
}

/** The last apply asked of each database: applies to one database run one after the other. */
const queues = new WeakMap<Database, Promise<unknown>>();

/**
 * Commits `batches` to `db` in order, one transaction per batch, and stops at the first that
 * fails: nothing after it is attempted, so the resume point can stop right before it. Waits for
 * any apply to the same database still running (a client restarted, or a worker replaced,
 * while its batch was being written), so that an older batch never commits after a newer one.
 */
export function applyToDatabase(db: Database, batches: readonly ChangeBatch[]): Promise<ApplyAnswer> {
  const run = (queues.get(db) ?? Promise.resolve()).then(() => commitBatches(db, batches));
  queues.set(db, run);
  return run;
}

async function commitBatches(db: Database, batches: readonly ChangeBatch[]): Promise<ApplyAnswer> {
  let count = 0;
  for (const { changes } of batches) {
    const arrived = Date.now();
    try {
      await db.transaction(async (tx) => {
        for (const change of changes) {
          const timestamp = change.timestamp ?? arrived;
          if (change.type === 'update') await tx.upsertEntity(change.entityType, change.entityId, change.data, timestamp);
          else await tx.deleteEntity(change.entityType, change.entityId, timestamp);
        }
      });
    } catch (error) {
      return { count, error: errorMessage(error) };
    }
    count += 1;
  }
  return { count };
}
