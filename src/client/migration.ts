/**
 * Helpers for apps moving from the older `SyncClient`: its event listeners, its queued operations,
 * and its client id and resume point.
 */
import { LocalStore } from '../db/local-store.ts';
import { DEFAULT_DB_NAME } from '../db/schema.ts';
import { isLSN, normalizeLSN, ZERO_LSN, type LSN } from '../protocol/lsn.ts';
import type { SyncClientCompat } from './compat.ts';
import { syncClient, syncClientLegacy } from './default-client.ts';
import { errorMessage, SyncError } from '../protocol/errors.ts';
import { defaultLegacyStorage, forgetLegacyState, readLegacyState, type LegacyStorage } from './legacy-state.ts';
import type { LegacySyncState, SyncOperation } from './legacy-types.ts';
import { SYNC_EVENT_TYPES, type SyncEventDetails, type SyncEventType } from './service-events.ts';

/** A listener per event type, as the older client took them. */
export type LegacyListenerMap = { [K in SyncEventType]?: (detail: SyncEventDetails[K]) => void };

/** What events can be listened to on: a sync client (`on`) or a `<sync-connection>` (DOM events). */
export type ListenerTarget =
  | { on<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void }
  | EventTarget;

/**
 * Adds every listener of `map` to `target` (default: the module's `syncClient`, where the older
 * client's listeners were); a `<sync-connection>` target hands each listener
 * the event's `detail`, as the older client did. Returns one function that removes them all.
 * An unknown event name throws before anything is added.
 */
export function migrateEventListeners(map: LegacyListenerMap, target: ListenerTarget = syncClient): () => void {
  const entries = Object.entries(map) as [string, unknown][];
  for (const [type, listener] of entries) {
    if (!(SYNC_EVENT_TYPES as readonly string[]).includes(type)) {
      throw new TypeError(`Unknown sync event "${type}"; the events are ${SYNC_EVENT_TYPES.join(', ')}`);
    }
    if (typeof listener !== 'function') throw new TypeError(`The listener for "${type}" is not a function`);
  }
  const removers = entries.map(([type, listener]) => {
    const call = listener as (detail: unknown) => void;
    if ('on' in target) return target.on(type as SyncEventType, call);
    const onEvent = (event: Event) => call((event as CustomEvent).detail);
    target.addEventListener(type, onEvent);
    return () => target.removeEventListener(type, onEvent);
  });
  return () => {
    for (const remove of removers.splice(0)) remove();
  };
}

export interface MigratedOperations {
  /** Ids of the operations now in the durable outbox (or, with `execute`, waiting their turn). */
  queued: string[];
  /** Operations that could not be queued, and why; their `reject` was called too. */
  rejected: { id: string | undefined; reason: string }[];
}

/**
 * Queues the older client's unsent operations on `client` (default: `syncClientLegacy`), in their order, keeping their ids so
 * that one the server already applied is not applied again. Resolves once each is stored (or
 * refused); their `resolve`/`reject` callbacks are called when the server answers.
 */
export async function migrateQueuedOperations(
  operations: readonly SyncOperation[],
  client: SyncClientCompat = syncClientLegacy,
): Promise<MigratedOperations> {
  const result: MigratedOperations = { queued: [], rejected: [] };
  for (const operation of operations) {
    try {
      result.queued.push(await client.storeOperation(operation));
    } catch (error) {
      result.rejected.push({ id: operation?.id, reason: errorMessage(error) });
    }
  }
  return result;
}

export interface MigrateStateOptions {
  /** The database the new client uses; default `sync-connection`. */
  dbName?: string;
  /** Where the older client kept its id and LSN; default `localStorage`, `null` to skip it. */
  storage?: LegacyStorage | null;
  /** Carry the LSN over too (default); see below. */
  includeLSN?: boolean;
}

export interface MigratedState {
  /** What the database holds afterwards (`undefined`: no id yet, the client creates one). */
  clientId: string | undefined;
  lastLSN: LSN;
  /** Which of the two were carried over now: only into a database that had none. */
  migrated: ('clientId' | 'lastLSN')[];
  /** Values found in `storage` that were not usable, and why. */
  skipped: string[];
}

/**
 * Carries the older client's id and resume point into the database, each only where it has none
 * yet, so that the new client resumes where the old one stopped. `oldState` wins over the
 * legacy localStorage keys `sync_client_id` and `sync_last_lsn`, which are removed once carried.
 *
 * The LSN is marked as your own `Database`'s, where the old client wrote the entities: a client
 * using the built-in store (empty) ignores it and syncs from `0/0`. Call this before the client
 * starts; a started client has already read its state.
 */
export async function migrateSyncState(
  oldState?: LegacySyncState | null,
  options: MigrateStateOptions = {},
): Promise<MigratedState> {
  const storage = options.storage === undefined ? defaultLegacyStorage() : options.storage;
  const stored = readLegacyState(storage);
  let clientId = stored.clientId;
  if (oldState?.clientId != null) {
    if (typeof oldState.clientId !== 'string' || oldState.clientId.length === 0) {
      throw new TypeError('The old clientId must be a non-empty string');
    }
    clientId = oldState.clientId;
  }
  let lastLSN = stored.lastLSN;
  if (oldState?.lastLSN != null) {
    if (!isLSN(oldState.lastLSN)) {
      throw new TypeError(`The old lastLSN ${JSON.stringify(oldState.lastLSN)} is not an LSN ("X/Y", hexadecimal)`);
    }
    lastLSN = normalizeLSN(oldState.lastLSN);
  }
  if (options.includeLSN === false) lastLSN = undefined;

  const dbName = options.dbName || DEFAULT_DB_NAME;
  let store;
  try {
    store = await LocalStore.open(dbName);
  } catch (cause) {
    throw new SyncError('storage', `Could not open the database "${dbName}" to migrate the state: ${String(cause)}`, { cause });
  }
  try {
    const seeded = await store.seedProgress({
      ...(clientId === undefined ? {} : { clientId }),
      ...(lastLSN === undefined ? {} : { lastLSN }),
    });
    if (stored.clientId !== undefined || stored.lastLSN !== undefined) forgetLegacyState(storage);
    return { clientId: seeded.clientId, lastLSN: seeded.lastLSN ?? ZERO_LSN, migrated: seeded.wrote, skipped: stored.skipped };
  } finally {
    store.close();
  }
}
