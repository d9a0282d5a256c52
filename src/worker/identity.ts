import type { SyncDB } from '../db/schema.ts';
import { errorMessage, StorageError } from './errors.ts';

/**
 * The client id to use: `configured` when non-empty, else the one stored in the database, else a
 * new random id stored there (in one transaction, so two tabs starting together agree).
 */
export async function resolveClientId(db: SyncDB, configured: string): Promise<string> {
  if (configured.length > 0) return configured;
  try {
    const tx = db.transaction('meta', 'readwrite');
    const stored = await tx.store.get('clientId');
    if (typeof stored === 'string' && stored.length > 0) {
      await tx.done;
      return stored;
    }
    const created = crypto.randomUUID();
    await Promise.all([tx.store.put(created, 'clientId'), tx.done]);
    return created;
  } catch (error) {
    throw new StorageError(`Could not load or create the client id: ${errorMessage(error)}`);
  }
}
