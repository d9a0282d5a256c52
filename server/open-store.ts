import { FileSyncStore } from './store.ts';
import type { SyncStore } from './sync-store.ts';

export interface StoreLocation {
  /** The embedded log's directory. */
  dataDir?: string;
  /** A `postgres://` or `postgresql://` URL: the state lives in that database instead. */
  storeUrl?: string;
}

/** True when `url` names a store this server can open. */
export function isStoreUrl(url: string): boolean {
  return /^postgres(ql)?:\/\/./i.test(url);
}

/** Opens the store a location names: PostgreSQL when a URL is given, else the embedded log. */
export async function openStore(location: StoreLocation): Promise<SyncStore> {
  if (location.storeUrl !== undefined) {
    if (!isStoreUrl(location.storeUrl)) throw new Error('the store URL must start with postgres:// or postgresql://');
    // Loaded only when asked for: the embedded log does not need the `pg` driver installed.
    const { PostgresSyncStore } = await import('./postgres-store.ts');
    return PostgresSyncStore.open(location.storeUrl);
  }
  if (location.dataDir === undefined) throw new Error('createSyncServer needs dataDir, storeUrl or store');
  const { store } = await FileSyncStore.open(location.dataDir);
  return store;
}
