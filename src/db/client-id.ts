import type { SyncDB } from './schema.ts';
import type { LSN } from '../protocol/lsn.ts';

/**
 * The client id to use: `configured` when non-empty, else the one stored in the database, else a
 * new random id stored there, in one readwrite transaction so that two tabs starting together
 * agree on it.
 */
export async function resolveClientId(db: SyncDB, configured: string): Promise<string> {
  if (configured.length > 0) return configured;
  const tx = db.transaction('meta', 'readwrite');
  const stored = await tx.store.get('clientId');
  if (typeof stored === 'string' && stored.length > 0) {
    await tx.done;
    return stored;
  }
  const created = crypto.randomUUID();
  await Promise.all([tx.store.put(created, 'clientId'), tx.done]);
  return created;
}

/** What a tab without a worker shows before the leader tells it more. */
export async function readStoredProgress(db: SyncDB): Promise<{ lastLSN: LSN | undefined; pending: number }> {
  const tx = db.transaction(['meta', 'outbox'], 'readonly');
  const [lastLSN, pending] = await Promise.all([
    tx.objectStore('meta').get('lastLSN'),
    tx.objectStore('outbox').count(),
    tx.done,
  ]);
  return { lastLSN: typeof lastLSN === 'string' ? lastLSN : undefined, pending };
}
