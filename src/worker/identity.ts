import { resolveClientId as resolveStored } from '../db/client-id.ts';
import type { SyncDB } from '../db/schema.ts';
import { errorMessage, StorageError } from '../protocol/errors.ts';

/** The client id (see `db/client-id.ts`), failing with a `StorageError` the engine reports. */
export async function resolveClientId(db: SyncDB, configured: string): Promise<string> {
  try {
    return await resolveStored(db, configured);
  } catch (error) {
    throw new StorageError(`Could not load or create the client id: ${errorMessage(error)}`);
  }
}
