import { serializeError, reviveError, SyncError } from '../protocol/errors.ts';
import type { QueuedOperation, SyncRole, SyncState } from '../protocol/state.ts';
import type { TabCommand, TabEvent, TabMessage } from '../protocol/tab-messages.ts';
import type { WorkerEvent } from '../protocol/worker-messages.ts';
import { LeaderElection, type LockManagerLike } from './leader-election.ts';
import { TabChannel } from './tab-channel.ts';

/** How long a follower waits for the leader to answer a command. */
const COMMAND_TIMEOUT = 5_000;

let warnedNoLocks = false;

/** What the coordinator asks of the client it works for. */
export interface TabHost {
  /** This tab started or stopped leading. */
  roleChanged(role: SyncRole): void;
  /** An event of the leader's worker, heard by a follower; `status` carries the leader's state. */
  leaderEvent(event: TabEvent): void;
  /** Another tab is queueing these operations (not stored yet). */
  operationsQueued(operations: readonly QueuedOperation[]): void;
  /** Another tab stored these operations (the leader sends them). */
  operationsStored(operations: readonly QueuedOperation[]): void;
  /** Another tab could not store these operations it had told of. */
  operationsDropped(operations: readonly QueuedOperation[]): void;
  /** The leader runs a follower's command; resolves with the answer. */
  followerCommand(command: TabCommand): Promise<unknown>;
  /** Another tab removed these operations from the outbox. */
  cleared(ids: readonly string[]): void;
  /** The leader's worker has loaded the outbox (a new leader, or its worker restarted). */
  leaderStarted(): void;
  /** This tab's state, to tell the others. */
  state(): SyncState;
}

/**
 * The tabs of one client (one database and client id) that want a connection elect a leader
 * with a Web Lock; only the leader runs the worker and its socket, and tells the others every
 * event over a BroadcastChannel. This is the one answer to "does this tab lead?" ({@link leading}),
 * whatever its worker is doing. Without Web Locks every tab leads, and no channel is opened.
 */
export class TabCoordinator {
  readonly #name: string;
  readonly #locks: LockManagerLike | undefined;
  readonly #host: TabHost;
  readonly #election: LeaderElection;
  readonly #channel: TabChannel | undefined;
  readonly #asks = new Map<string, { resolve(value: unknown): void; reject(error: Error): void }>();
  /** Another tab of this client has spoken: a leader then copies its events to the channel. */
  #audience = false;
  /** What this tab queued and stored in this task, told to the other tabs together at its end. */
  #queued: QueuedOperation[] = [];
  #stored: QueuedOperation[] = [];
  #closed = false;

  constructor(name: string, locks: LockManagerLike | undefined, host: TabHost) {
    this.#name = name;
    this.#locks = locks;
    this.#host = host;
    this.#election = new LeaderElection(name, (role) => this.#onRole(role), locks);
    if (locks) {
      this.#channel = new TabChannel(name, (message) => this.#onMessage(message));
      this.#channel.post({ kind: 'hello' });
    } else if (!warnedNoLocks) {
      warnedNoLocks = true;
      console.warn('sync-connection: this browser has no Web Locks, so every tab opens its own connection');
    }
  }

  /** True while this tab holds the connection, its worker restarting included. */
  get leading(): boolean {
    return this.#election.role === 'leader';
  }

  get role(): SyncRole {
    return this.#election.role;
  }

  /** Takes part in the election; resolves with the first role. */
  join(): Promise<SyncRole> {
    return this.#election.start();
  }

  /** Stops taking part; a leader hands the connection to the next tab in line. */
  leave(): void {
    this.#election.stop();
  }

  /** An event of this leader's worker: a new state is announced, the rest relayed to listeners. */
  relay(event: WorkerEvent): void {
    // Copying every event to a channel nobody listens to costs the page ~20% of a burst.
    if (event.type === 'status') this.announce();
    else if (this.#audience && event.type !== 'apply') this.#channel?.post({ kind: 'event', event });
  }

  /** Tells the other tabs this tab's state, when another tab has spoken. */
  announce(): void {
    if (this.#audience) this.tellState();
  }

  /** This leader's worker has loaded the outbox: the other tabs hear it as a new leader. */
  workerStarted(): void {
    this.#channel?.post({ kind: 'leading' });
  }

  tellState(): void {
    this.#channel?.post({ kind: 'event', event: { type: 'status', state: this.#host.state() } });
  }

  /**
   * An operation this tab stored: every other tab shows it, the leader sends it. Those stored in
   * one task go in one message.
   */
  storedOperation(operation: QueuedOperation): void {
    this.#tell(this.#stored, operation);
  }

  /** An operation this tab is queueing: every other tab shows it now. */
  queuedOperation(operation: QueuedOperation): void {
    this.#tell(this.#queued, operation);
  }

  /** Operations this tab told of and could not store. */
  droppedOperations(operations: QueuedOperation[]): void {
    this.#flush();
    if (!this.#closed) this.#channel?.post({ kind: 'dropped', operations });
  }

  #tell(list: QueuedOperation[], operation: QueuedOperation): void {
    if (!this.#channel || this.#closed) return;
    list.push(operation);
    if (this.#queued.length + this.#stored.length === 1) queueMicrotask(() => this.#flush());
  }

  /** Posts what is waiting: what was queued before what was stored. */
  #flush(): void {
    const queued = this.#queued;
    const stored = this.#stored;
    this.#queued = [];
    this.#stored = [];
    if (queued.length > 0) this.#channel?.post({ kind: 'queued', operations: queued });
    if (stored.length > 0) this.#channel?.post({ kind: 'stored', operations: stored });
  }

  /** A follower's command the leader runs without answering. */
  command(command: TabCommand): void {
    this.#channel?.post({ kind: 'command', command });
  }

  /** Operations removed from the outbox: their promises reject in every tab. */
  cleared(ids: string[]): void {
    this.#channel?.post({ kind: 'cleared', ids });
  }

  /** Sends a command to the leader and waits for its answer. */
  ask(command: TabCommand): Promise<unknown> {
    const channel = this.#channel;
    if (!channel) return Promise.reject(new SyncError('closed', 'Not connected: no tab holds the connection'));
    const id = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#asks.delete(id);
        reject(new SyncError('closed', `No tab holding the connection answered "${command}"`));
      }, COMMAND_TIMEOUT);
      this.#asks.set(id, {
        resolve: (value) => { clearTimeout(timer); resolve(value); },
        reject: (error) => { clearTimeout(timer); reject(error); },
      });
      channel.post({ kind: 'command', id, command });
    });
  }

  /**
   * Runs `work` holding the lock if nobody leads, so that no tab can start leading (and load the
   * outbox) in the middle; `undefined` when a tab leads. Without Web Locks it just runs `work`.
   */
  async whileNobodyLeads<T>(work: () => Promise<T>): Promise<{ value: T } | undefined> {
    const locks = this.#locks;
    if (!locks) return { value: await work() };
    let done: { value: T } | undefined;
    await locks.request(this.#name, { mode: 'exclusive', ifAvailable: true }, async (lock) => {
      if (lock) done = { value: await work() };
    });
    return done;
  }

  /** Stops for good: a leader steps down first, which the others hear. */
  close(): void {
    this.#election.stop();
    this.#flush();
    this.#closed = true;
    this.#channel?.close();
    for (const ask of this.#asks.values()) ask.reject(new SyncError('closed', 'The sync client was cleaned up'));
    this.#asks.clear();
  }

  #onRole(role: SyncRole): void {
    if (role === 'leader' && this.#closed) {
      this.#election.stop();
      return;
    }
    if (role === 'leader') this.#channel?.post({ kind: 'leading' });
    this.#host.roleChanged(role);
    if (role === 'follower') {
      // Whoever mirrored this tab sees it stop, until the next leader speaks.
      this.announce();
      this.#channel?.post({ kind: 'hello' });
    }
  }

  #onMessage(message: TabMessage): void {
    const leading = this.leading;
    // Every tab says hello when it starts, so whoever leads, now or later, knows it has listeners.
    if (message.kind === 'hello' || message.kind === 'queued' || message.kind === 'stored' || message.kind === 'command') this.#audience = true;
    switch (message.kind) {
      case 'leading':
        if (leading) return;
        this.#channel?.post({ kind: 'hello' });
        this.#host.leaderStarted();
        return;
      case 'event':
        if (!leading) this.#host.leaderEvent(message.event);
        return;
      case 'hello':
        if (leading) this.tellState();
        return;
      case 'queued':
        this.#host.operationsQueued(message.operations);
        return;
      case 'stored':
        this.#host.operationsStored(message.operations);
        return;
      case 'dropped':
        this.#host.operationsDropped(message.operations);
        return;
      case 'command':
        if (leading) void this.#answer(message.command, message.id);
        return;
      case 'reply': {
        const ask = this.#asks.get(message.id);
        this.#asks.delete(message.id);
        if (message.ok) ask?.resolve(message.value);
        else ask?.reject(reviveError(message.error));
        return;
      }
      case 'cleared':
        this.#host.cleared(message.ids);
        return;
      default: {
        const unhandled: never = message;
        void unhandled;
      }
    }
  }

  /** Runs a follower's command; answers it when the follower waits for it. */
  async #answer(command: TabCommand, id: string | undefined): Promise<void> {
    try {
      const value = await this.#host.followerCommand(command);
      if (id) this.#channel?.post({ kind: 'reply', id, ok: true, value });
    } catch (error) {
      if (id) this.#channel?.post({ kind: 'reply', id, ok: false, error: serializeError(error) });
    }
  }
}
