import { DEFAULT_DB_NAME } from '../db/schema.ts';
import { tabsName } from '../protocol/tab-messages.ts';
import { LeaderElection, type LockManagerLike } from './leader-election.ts';

interface LockSnapshot {
  held?: { name?: string }[];
  pending?: { name?: string }[];
}

type QueryableLocks = LockManagerLike & { query?: () => Promise<LockSnapshot> };

/**
 * The older `SyncClient`'s `GlobalConnectionTracker` API on top of the Web Locks election that
 * `<sync-connection>` uses: "connected" means a tab leads (holds the client's lock), "attempting"
 * means a tab waits in line for it. Nothing is kept in localStorage, so nothing goes stale when a
 * tab dies: the browser releases its locks.
 */
export class GlobalConnectionTracker {
  readonly #dbName: string;
  readonly #locks: QueryableLocks | undefined;
  readonly #registered = new Map<string, LeaderElection>();

  constructor(dbName: string = DEFAULT_DB_NAME, locks: QueryableLocks | undefined = globalThis.navigator?.locks as QueryableLocks | undefined) {
    this.#dbName = dbName;
    this.#locks = locks;
  }

  /** True when some tab holds the connection of `clientId`. */
  async isClientConnected(clientId: string): Promise<boolean> {
    const { held = [] } = await this.#query();
    return held.some((lock) => lock.name === this.#name(clientId));
  }

  /** True when some tab waits to take the connection of `clientId` over. */
  async isAttemptingConnection(clientId: string): Promise<boolean> {
    const { pending = [] } = await this.#query();
    return pending.some((lock) => lock.name === this.#name(clientId));
  }

  /**
   * Takes part in the election for `clientId`: resolves true when this tab now holds the
   * connection, false when another does (this tab then waits in line and takes over when it goes).
   */
  async registerConnection(clientId: string): Promise<boolean> {
    let election = this.#registered.get(clientId);
    if (!election) {
      election = new LeaderElection(this.#name(clientId), () => undefined, this.#locks);
      this.#registered.set(clientId, election);
    }
    return (await election.start()) === 'leader';
  }

  /** Stops taking part; a tab holding the connection hands it to the next in line. */
  closeConnection(clientId: string): void {
    this.#registered.get(clientId)?.stop();
    this.#registered.delete(clientId);
  }

  /** Waits until some tab holds the connection of `clientId`; false after `timeout` ms. */
  async waitForExistingAttempt(clientId: string, timeout = 5_000): Promise<boolean> {
    const deadline = Date.now() + timeout;
    for (;;) {
      if (await this.isClientConnected(clientId)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Closes every registration made through this tracker. */
  cleanup(): void {
    for (const clientId of [...this.#registered.keys()]) this.closeConnection(clientId);
  }

  #name(clientId: string): string {
    return tabsName(this.#dbName, clientId);
  }

  async #query(): Promise<LockSnapshot> {
    return this.#locks?.query ? this.#locks.query() : {};
  }
}
