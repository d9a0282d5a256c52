/**
 * Page-side helper for the worker tests: starts `mock-sync-worker.ts` with its own database,
 * sends `PageToWorker` requests, drives the mock server and records everything that comes back.
 */
import type { SyncWorkerManager } from '../../src/client/worker-manager.ts';
import { storedEntity } from '../../src/db/records.ts';
import { LocalStore } from '../../src/db/local-store.ts';
import { openSyncDB, type StoredEntity, type SyncDB } from '../../src/db/schema.ts';
import { DEFAULT_CONNECTION_OPTIONS, type QueuedOperation } from '../../src/protocol/state.ts';
import type { WorkerConfig, WorkerEvent, WorkerToPage } from '../../src/protocol/worker-messages.ts';
import { within } from '../helpers/wait.ts';
import { isMockMessage, MOCK_SERVER_URL, type MockCommand, type MockReport } from './mock-protocol.ts';

/** A request as the page's worker manager sends it, before it gets its `requestId`. */
type Request = Parameters<SyncWorkerManager['request']>[0];
type Command = MockCommand extends infer M ? (M extends { id: number } ? Omit<M, 'id'> : never) : never;
type EventOf<K extends WorkerEvent['type']> = Extract<WorkerEvent, { type: K }>;

export interface ReceivedFrame {
  conn: number;
  frame: Record<string, unknown>;
}

export interface HarnessOptions {
  config?: Partial<WorkerConfig>;
  /** Reuse a database (e.g. a second worker on the first one's data). */
  dbName?: string;
  /** Send `init` at start; default true. */
  init?: boolean;
  /** Operations sent and not yet acknowledged, at most (the engine's default otherwise). */
  inFlightWindow?: number;
}

interface Settle {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

const WAIT_MS = 5_000;

export function uniqueDbName(): string {
  return `worker-test-${crypto.randomUUID()}`;
}

export class WorkerHarness {
  readonly dbName: string;
  readonly config: WorkerConfig;
  readonly events: WorkerEvent[] = [];
  readonly connections: { conn: number; url: string }[] = [];
  /** The URL of every socket the engine created, refused ones included, reported as it creates it. */
  readonly dials: string[] = [];
  readonly frames: ReceivedFrame[] = [];
  readonly closed: number[] = [];
  /** Frames the mock server refused as over its `max_payload` (it closed with 1009). */
  readonly oversized: { conn: number; length: number }[] = [];
  readonly #worker: Worker;
  readonly #requests = new Map<number, Settle>();
  readonly #commands = new Map<number, Settle>();
  readonly #watchers = new Set<() => void>();
  #nextId = 1;
  #db: SyncDB | undefined;

  private constructor(options: HarnessOptions) {
    this.dbName = options.dbName ?? uniqueDbName();
    this.config = {
      ...DEFAULT_CONNECTION_OPTIONS,
      url: MOCK_SERVER_URL,
      clientId: '',
      dbName: this.dbName,
      ...options.config,
    };
    const entry = new URL('./mock-sync-worker.ts', import.meta.url);
    if (options.inFlightWindow !== undefined) entry.searchParams.set('window', String(options.inFlightWindow));
    this.#worker = new Worker(entry, { type: 'module' });
    this.#worker.addEventListener('message', (event: MessageEvent) => this.#receive(event.data));
    this.#worker.addEventListener('error', (event) => {
      const error = new Error(`mock worker failed: ${(event as ErrorEvent).message ?? 'unknown'}`);
      for (const pending of [...this.#requests.values(), ...this.#commands.values()]) pending.reject(error);
    });
  }

  static async start(options: HarnessOptions = {}): Promise<WorkerHarness> {
    const harness = new WorkerHarness(options);
    if (options.init !== false) await harness.request({ type: 'init', config: harness.config });
    return harness;
  }

  /** Sends a request; resolves with its value, rejects with `name: message` when it failed. */
  request<T = unknown>(message: Request): Promise<T> {
    const requestId = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#requests.set(requestId, { resolve: resolve as (value: unknown) => void, reject });
      this.#worker.postMessage({ ...message, requestId });
    });
  }

  /** Sends a raw message, bypassing the request typing (to test the worker's checks). */
  post(message: unknown): void {
    this.#worker.postMessage(message);
  }

  mock(command: Command): Promise<void> {
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#commands.set(id, { resolve: () => resolve(), reject });
      this.#worker.postMessage({ ...command, id });
    });
  }

  /**
   * Makes the mock server send frames, all in one task (a string goes as raw text). Resolves once
   * the engine's socket has dispatched them: mock-socket delivers a server's frames synchronously.
   */
  send(...frames: unknown[]): Promise<void> {
    return this.mock({ mock: 'send', frames });
  }

  eventsOf<K extends WorkerEvent['type']>(type: K, from = 0): EventOf<K>[] {
    return this.events.slice(from).filter((event): event is EventOf<K> => event.type === type);
  }

  framesOf(type: string, from = 0): ReceivedFrame[] {
    return this.frames.slice(from).filter(({ frame }) => frame.type === type);
  }

  /** Resolves with the first non-undefined value of `check`, re-evaluated on every message. */
  waitFor<T>(what: string, check: () => T | undefined, timeout = WAIT_MS): Promise<T> {
    const first = check();
    if (first !== undefined) return Promise.resolve(first);
    let watcher!: () => void;
    const found = new Promise<T>((resolve) => {
      watcher = () => {
        const value = check();
        if (value !== undefined) resolve(value);
      };
      this.#watchers.add(watcher);
    });
    const recent = (): string => this.events.slice(-8).map((event) => event.type).join(', ');
    return within(found, what, timeout)
      .catch((error: Error) => { throw new Error(`${error.message} (recent events: ${recent()})`); })
      .finally(() => this.#watchers.delete(watcher));
  }

  /** The first event of `type` at index `from` or later that satisfies `match`. */
  waitForEvent<K extends WorkerEvent['type']>(
    type: K,
    match: (event: EventOf<K>) => boolean = () => true,
    from = 0,
  ): Promise<EventOf<K>> {
    return this.waitFor(`a "${type}" event`, () => this.eventsOf(type, from).find(match));
  }

  /** The first frame of `type` the server received at index `from` or later. */
  waitForFrame(
    type: string,
    match: (frame: ReceivedFrame) => boolean = () => true,
    from = 0,
  ): Promise<ReceivedFrame> {
    return this.waitFor(`a "${type}" frame at the server`, () => this.framesOf(type, from).find(match));
  }

  /**
   * Waits until each of `ids` has left the outbox: answered, its record deleted, and the page told
   * (`changes` naming it in `settled`).
   */
  async waitForSettled(...ids: string[]): Promise<void> {
    await this.waitFor(`${ids.join(', ')} settled`, () => {
      const settled = new Set(this.eventsOf('changes').flatMap((event) => event.settled ?? []));
      return ids.every((id) => settled.has(id)) ? true : undefined;
    });
  }

  /**
   * The worker's state as the page holds it: the latest `status` event, with the count of
   * operations still unanswered that any later answer carried.
   */
  state(): EventOf<'status'>['state'] | undefined {
    let state: EventOf<'status'>['state'] | undefined;
    for (const event of this.events) {
      if (event.type === 'status') state = event.state;
      else if (state && (event.type === 'operation_complete' || event.type === 'operation_error') && event.pending !== undefined) {
        state = { ...state, pendingOperations: event.pending };
      }
    }
    return state;
  }

  /** Waits until the worker's state, as the page holds it, satisfies `match`. */
  async waitForState(what: string, match: (state: EventOf<'status'>['state']) => boolean): Promise<void> {
    await this.waitFor(`state: ${what}`, () => {
      const state = this.state();
      return state && match(state) ? true : undefined;
    });
  }

  /** `connect`, then wait until the server saw the `sync` of a new connection. */
  async connect(): Promise<ReceivedFrame> {
    const from = this.frames.length;
    await this.request({ type: 'connect' });
    return this.waitForFrame('sync', () => true, from);
  }

  /** A frame of an unknown type; once its `message` event arrives, every earlier frame was handled. */
  async barrier(): Promise<void> {
    const tag = crypto.randomUUID();
    await this.send({ type: 'test_barrier', tag });
    await this.waitForEvent('message', (event) => event.message.tag === tag);
  }

  /**
   * A frame each way: the {@link barrier}, then a frame the engine sends, seen at the server. By
   * then every frame the engine sent before it is at the server too (one socket keeps its order),
   * including what it sent in answer to the server's earlier frames. Needs an open connection.
   */
  async roundTrip(): Promise<void> {
    await this.barrier();
    const tag = crypto.randomUUID();
    const from = this.frames.length;
    await this.request({ type: 'send_message', payload: { type: 'test_barrier', tag } });
    await this.waitForFrame('test_barrier', ({ frame }) => frame.tag === tag, from);
  }

  // ---- the database, seen from the page ---------------------------------------------------------

  async database(): Promise<SyncDB> {
    if (!this.#db) {
      // Closed when another connection deletes or upgrades the database: forget it, reopen later.
      const forget = (): void => { if (this.#db === db) this.#db = undefined; };
      const db = await openSyncDB(this.dbName, { onBlocking: forget, onTerminated: forget });
      this.#db = db;
    }
    return this.#db;
  }

  /**
   * One entity as the store holds it: its folded record, or the latest change to it in a segment
   * not folded yet (what a page reads through its recent changes).
   */
  async entity(entityType: string, entityId: string): Promise<StoredEntity | undefined> {
    const db = await this.database();
    const tx = db.transaction(['entities', 'segments'], 'readonly');
    const [folded, segments] = await Promise.all([
      tx.objectStore('entities').get([entityType, entityId]),
      tx.objectStore('segments').getAll(),
      tx.done,
    ]);
    let found: { entity: StoredEntity | undefined } | undefined;
    for (const { batches } of segments) {
      for (const { changes, lsn } of batches) {
        for (const change of changes) {
          if (change.entityType !== entityType || change.entityId !== entityId) continue;
          found = { entity: change.type === 'update' ? storedEntity(change, lsn) : undefined };
        }
      }
    }
    return found ? found.entity : folded;
  }

  async storedLSN(): Promise<unknown> {
    return (await this.database()).get('meta', 'lastLSN');
  }

  async outboxIds(): Promise<string[]> {
    return (await new LocalStore(await this.database()).operations()).map(({ id }) => id);
  }

  /** Does what the page does: store the operation durably, then tell the worker. */
  async queue(operation: Partial<QueuedOperation> & { id: string }, notify = true): Promise<QueuedOperation> {
    const record: QueuedOperation = {
      type: 'test',
      payload: null,
      priority: 0,
      seq: 0,
      queuedAt: Date.now(),
      ...operation,
    };
    await new LocalStore(await this.database()).addOperations([record]);
    if (notify) await this.request({ type: 'operation', operation: record });
    return record;
  }

  /** Terminates the worker and deletes its database. */
  async stop(options: { keepDatabase?: boolean } = {}): Promise<void> {
    this.#worker.terminate();
    this.#db?.close();
    this.#db = undefined;
    if (!options.keepDatabase) await deleteDatabase(this.dbName);
  }

  #receive(data: unknown): void {
    if (isMockMessage(data)) {
      this.#onReport(data as MockReport);
    } else {
      const message = data as WorkerToPage;
      if (message.type === 'result') {
        const pending = this.#requests.get(message.requestId);
        this.#requests.delete(message.requestId);
        if (message.ok) pending?.resolve(message.value);
        else pending?.reject(Object.assign(new Error(message.error.message), { name: message.error.name }));
      } else {
        this.events.push(message);
      }
    }
    for (const watcher of [...this.#watchers]) watcher();
  }

  #onReport(report: MockReport): void {
    switch (report.mock) {
      case 'reply': {
        const pending = this.#commands.get(report.id);
        this.#commands.delete(report.id);
        if (report.ok) pending?.resolve(undefined);
        else pending?.reject(new Error(report.error ?? 'mock command failed'));
        return;
      }
      case 'dial':
        this.dials.push(report.url);
        return;
      case 'connection':
        this.connections.push({ conn: report.conn, url: report.url });
        return;
      case 'frame':
        this.frames.push({ conn: report.conn, frame: report.frame as Record<string, unknown> });
        return;
      case 'closed':
        this.closed.push(report.conn);
        return;
      case 'oversized':
        this.oversized.push({ conn: report.conn, length: report.length });
        return;
      default: {
        const unknown: never = report;
        throw new Error(`unknown mock report ${JSON.stringify(unknown)}`);
      }
    }
  }
}

export function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = () => resolve();
    request.onerror = () => resolve();
  });
}
