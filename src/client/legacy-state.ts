/** The older client's id and resume point as it left them in localStorage. */
import type { LocalStore } from '../db/local-store.ts';
import { isLSN, normalizeLSN, type LSN } from '../protocol/lsn.ts';
import { errorMessage } from '../protocol/errors.ts';
import { LEGACY_CLIENT_ID_KEY, LEGACY_LSN_KEY } from './legacy-types.ts';

export type LegacyStorage = Pick<Storage, 'getItem' | 'removeItem'>;

export interface LegacyValues {
  clientId?: string;
  lastLSN?: LSN;
  /** Values found that were not usable, and why. */
  skipped: string[];
}

/** `localStorage`, or null where the page has none or may not use it (a sandboxed frame throws). */
export function defaultLegacyStorage(): LegacyStorage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** Reads `sync_client_id` and `sync_last_lsn`; what is unusable is reported, never thrown. */
export function readLegacyState(storage: LegacyStorage | null): LegacyValues {
  const values: LegacyValues = { skipped: [] };
  const read = (key: string): string | undefined => {
    try {
      return storage?.getItem(key) ?? undefined;
    } catch (error) {
      values.skipped.push(`${key}: ${errorMessage(error)}`);
      return undefined;
    }
  };
  const clientId = read(LEGACY_CLIENT_ID_KEY);
  if (clientId) values.clientId = clientId;
  const lsn: unknown = read(LEGACY_LSN_KEY);
  if (isLSN(lsn)) values.lastLSN = normalizeLSN(lsn);
  else if (lsn !== undefined) values.skipped.push(`${LEGACY_LSN_KEY}: ${JSON.stringify(String(lsn).slice(0, 40))} is not an LSN`);
  return values;
}

/**
 * Carries the localStorage values into `db` where it has none (the LSN only with `includeLSN`),
 * then removes the keys, so that a database deleted later (a logout) is not seeded again with
 * a stale id and resume point.
 */
export async function carryLegacyState(store: LocalStore, storage: LegacyStorage | null, includeLSN: boolean): Promise<void> {
  const legacy = readLegacyState(storage);
  if (legacy.clientId === undefined && legacy.lastLSN === undefined) return;
  await store.seedProgress({
    ...(legacy.clientId === undefined ? {} : { clientId: legacy.clientId }),
    ...(includeLSN && legacy.lastLSN !== undefined ? { lastLSN: legacy.lastLSN } : {}),
  });
  forgetLegacyState(storage);
}

export function forgetLegacyState(storage: LegacyStorage | null): void {
  try {
    storage?.removeItem(LEGACY_CLIENT_ID_KEY);
    storage?.removeItem(LEGACY_LSN_KEY);
  } catch {
    // Storage that cannot be written: the database already holds the values.
  }
}
