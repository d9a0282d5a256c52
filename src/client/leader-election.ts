import type { SyncRole } from '../protocol/state.ts';

/** The part of `navigator.locks` the election uses. */
export interface LockManagerLike {
  request(
    name: string,
    options: { mode?: 'exclusive'; ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => Promise<unknown> | unknown,
  ): Promise<unknown>;
}

/**
 * One leader among the tabs that take part, by holding an exclusive Web Lock for as long as they
 * lead. The lock goes to the next tab in line when its holder releases it, navigates away, closes
 * or crashes: the browser releases a dead document's locks. Without Web Locks every tab leads.
 */
export class LeaderElection {
  readonly #name: string;
  readonly #locks: LockManagerLike | undefined;
  readonly #onRole: (role: SyncRole) => void;
  #role: SyncRole = 'follower';
  #running = false;
  #abort: AbortController | undefined;
  #release: (() => void) | undefined;

  constructor(name: string, onRole: (role: SyncRole) => void, locks: LockManagerLike | undefined) {
    this.#name = name;
    this.#onRole = onRole;
    this.#locks = locks;
  }

  /** False where the browser has no Web Locks: then every tab that takes part leads. */
  get supported(): boolean {
    return this.#locks !== undefined;
  }

  get role(): SyncRole {
    return this.#role;
  }

  get running(): boolean {
    return this.#running;
  }

  /**
   * Takes part: leads at once if nobody does, otherwise follows and waits in line. Resolves with
   * the first role, once it is known.
   */
  start(): Promise<SyncRole> {
    if (this.#running) return Promise.resolve(this.#role);
    this.#running = true;
    const locks = this.#locks;
    if (!locks) {
      this.#set('leader');
      return Promise.resolve('leader');
    }
    let decided!: (role: SyncRole) => void;
    const first = new Promise<SyncRole>((resolve) => { decided = resolve; });
    const abort = new AbortController();
    this.#abort = abort;
    const held = new Promise<void>((resolve) => { this.#release = resolve; });
    const lead = async (): Promise<void> => {
      if (abort.signal.aborted) {
        decided('follower'); // stopped before the lock came: never leave start() hanging
        return;
      }
      this.#set('leader');
      decided('leader');
      await held;
    };
    locks.request(this.#name, { mode: 'exclusive', ifAvailable: true }, async (lock) => {
      if (lock) return lead();
      decided('follower');
      if (!abort.signal.aborted) {
        void locks.request(this.#name, { mode: 'exclusive', signal: abort.signal }, lead)
          .catch(() => { /* aborted while waiting in line: we stopped */ });
      }
      return undefined;
    }).catch(() => decided('follower'));
    return first;
  }

  /** Stops taking part; a leader releases the lock to the next tab in line. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#abort?.abort();
    this.#abort = undefined;
    this.#release?.();
    this.#release = undefined;
    this.#set('follower');
  }

  #set(role: SyncRole): void {
    if (role === this.#role) return;
    this.#role = role;
    this.#onRole(role);
  }
}
