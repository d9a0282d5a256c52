import type { OpenReport } from './log-open.ts';
import type { ScopeOf } from './scopes.ts';
import { FileSyncStore } from './store.ts';
import type { SyncStore } from './sync-store.ts';

export interface StoreLocation {
  /** The embedded log's directory. */
  dataDir?: string;
  /** Embedded log: cut it at the first damaged record, keeping what precedes (see FileSyncStore.open). */
  recoverLog?: boolean;
  /** Told, in a sentence, what opening the store found and did (a torn tail cut, damage set aside, an import). */
  onStoreNotice?: (message: string) => void;
  /** A `postgres://` or `postgresql://` URL: the state lives in that database instead. */
  storeUrl?: string;
  /** Names each entity's scope as writes are resolved. */
  scopeOf?: ScopeOf;
  /** How long compaction keeps deletes and moves out of a scope (ms); default 30 days. */
  tombstoneRetentionMs?: number;
}

/** True when `url` names a store this server can open. */
export function isStoreUrl(url: string): boolean {
  return /^postgres(ql)?:\/\/./i.test(url);
}

/** Opens the store a location names: PostgreSQL when a URL is given, else the embedded log. */
export async function openStore(location: StoreLocation): Promise<SyncStore> {
  if (location.storeUrl !== undefined) {
    return openPostgresStore(location.storeUrl, {
      ...(location.scopeOf === undefined ? {} : { scopeOf: location.scopeOf }),
      ...(location.tombstoneRetentionMs === undefined ? {} : { tombstoneRetentionMs: location.tombstoneRetentionMs }),
    });
  }
  if (location.dataDir === undefined) throw new Error('createSyncServer needs dataDir, storeUrl or store');
  const { store, report } = await FileSyncStore.open(location.dataDir, {
    recover: location.recoverLog === true,
    ...(location.scopeOf === undefined ? {} : { scopeOf: location.scopeOf }),
    ...(location.tombstoneRetentionMs === undefined ? {} : { tombstoneRetentionMs: location.tombstoneRetentionMs }),
  });
  for (const notice of describeReport(report)) location.onStoreNotice?.(notice);
  return store;
}

/**
 * Opens the PostgreSQL store at `url` (`postgres://` or `postgresql://`). The driver, `pg`, is an
 * optional peer dependency loaded only here: the embedded log does not need it installed.
 */
export async function openPostgresStore(url: string, options: { scopeOf?: ScopeOf; tombstoneRetentionMs?: number } = {}): Promise<SyncStore> {
  if (!isStoreUrl(url)) throw new Error('the store URL must start with postgres:// or postgresql://');
  let loaded: typeof import('./postgres-store.ts');
  try {
    loaded = await import('./postgres-store.ts');
  } catch (error) {
    if (isMissingPackage(error, 'pg')) {
      throw new Error('a postgres:// store needs the PostgreSQL driver, which is not installed: npm install pg', { cause: error });
    }
    throw error;
  }
  return loaded.PostgresSyncStore.open(url, options);
}

/** True when `error` says that the package `name` could not be found. */
function isMissingPackage(error: unknown, name: string): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && error.message.includes(`'${name}'`);
}

function describeReport({ torn, recovered, imported }: OpenReport): string[] {
  const notices: string[] = [];
  if (imported) notices.push(`imported ${imported.records} records from the version-1 log, kept as ${imported.keptAt}${imported.tornBytes > 0 ? ` (a torn last line of ${imported.tornBytes} bytes left out)` : ''}`);
  if (torn) notices.push(`the log ended in ${torn.bytes} unreadable bytes at byte ${torn.offset} (${torn.reason}): an interrupted write, never acknowledged; cut`);
  if (recovered) notices.push(`--recover-log: cut the log at byte ${recovered.offset} (${recovered.reason}); the ${recovered.bytes} bytes from there were moved to ${recovered.savedTo}`);
  return notices;
}
