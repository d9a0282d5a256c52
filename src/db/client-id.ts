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

/**
 * Writes a client id and a resume point carried over from an older client, each only where the
 * database has none yet, in one readwrite transaction. Answers what is stored afterwards and
 * which of the two were written.
 */
export async function seedProgress(
  db: SyncDB,
  seed: { clientId?: string; lastLSN?: LSN },
): Promise<{ clientId: string | undefined; lastLSN: LSN | undefined; wrote: ('clientId' | 'lastLSN')[] }> {
  const tx = db.transaction('meta', 'readwrite');
  const [storedId, storedLSN] = await Promise.all([tx.store.get('clientId'), tx.store.get('lastLSN')]);
  let clientId = typeof storedId === 'string' && storedId.length > 0 ? storedId : undefined;
  let lastLSN = typeof storedLSN === 'string' ? storedLSN : undefined;
  const wrote: ('clientId' | 'lastLSN')[] = [];
  if (clientId === undefined && seed.clientId) {
    clientId = seed.clientId;
    tx.store.put(clientId, 'clientId').catch(() => undefined);
    wrote.push('clientId');
  }
  if (lastLSN === undefined && seed.lastLSN !== undefined) {
    lastLSN = seed.lastLSN;
    tx.store.put(lastLSN, 'lastLSN').catch(() => undefined);
    // An older client's LSN describes the app's own database, where that client wrote; a
    // built-in store (empty) that finds it starts from 0/0 instead.
    tx.store.put('page', 'lsnStore').catch(() => undefined);
    wrote.push('lastLSN');
  }
  await tx.done;
  return { clientId, lastLSN, wrote };
}
