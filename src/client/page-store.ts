import { LocalStore, type StartState } from '../db/local-store.ts';
import { errorMessage, SyncError } from '../protocol/errors.ts';
import type { SyncErrorDetail } from '../protocol/state.ts';
import { carryLegacyState, defaultLegacyStorage } from './legacy-state.ts';

/**
 * The page's connection to the local store: opened on first use, and again after the browser or
 * another connection (an upgrade, a deletion) closed it, until `close`.
 */
export class PageStore {
  /** The database's name, read at each open: the client's options are fixed only when it starts. */
  readonly #name: () => string;
  readonly #onBlocked: (detail: SyncErrorDetail) => void;
  #store: Promise<LocalStore> | undefined;
  #closed = false;

  /** `onBlocked` hears when the open waits for an older connection (another tab) to close. */
  constructor(name: () => string, onBlocked: (detail: SyncErrorDetail) => void) {
    this.#name = name;
    this.#onBlocked = onBlocked;
  }

  /** The open store; rejects with a `storage` SyncError. */
  open(): Promise<LocalStore> {
    if (this.#closed) return Promise.reject(new SyncError('storage', 'This sync client was cleaned up'));
    const name = this.#name();
    this.#store ??= LocalStore.open(name, {
      onBlocked: () => this.#onBlocked({
        code: 'storage',
        message: `The database "${name}" is held open at an older version by another connection; waiting for it to close`,
      }),
      onBlocking: () => { this.#store = undefined; },
      onTerminated: () => { this.#store = undefined; },
    }).catch((cause: unknown) => {
      this.#store = undefined;
      throw new SyncError('storage', `Could not open the database "${name}": ${errorMessage(cause)}`, { cause });
    });
    return this.#store;
  }

  /**
   * What the client starts from (see `LocalStore.startState`), after carrying an older client's
   * localStorage state over when `legacy` says so (its LSN too with `legacy.lsn`).
   */
  async startState(clientId: string, legacy: { carry: boolean; lsn: boolean }): Promise<StartState> {
    const store = await this.open();
    try {
      if (legacy.carry) await carryLegacyState(store, defaultLegacyStorage(), legacy.lsn);
      return await store.startState(clientId);
    } catch (cause) {
      throw new SyncError('storage', `Could not read the stored state: ${errorMessage(cause)}`, { cause });
    }
  }

  /** Closes the connection; nothing opens it again. */
  async close(): Promise<void> {
    this.#closed = true;
    const store = this.#store;
    this.#store = undefined;
    if (store) (await store.catch(() => undefined))?.close();
  }
}
