import type { OperationResult, SyncState } from '../protocol/state.ts';
import type { Database } from './database.ts';
import { SyncError } from '../protocol/errors.ts';
import type { SyncOperation } from './legacy-types.ts';
import type { NetworkStatus } from './network.ts';
import { WorkerSyncService } from './sync-service.ts';

type StateListener = (state: SyncState) => void;

/**
 * The older `SyncClient`'s interface over a {@link WorkerSyncService}, so that code written for
 * it keeps working. On first start the client carries the older client's localStorage id over
 * (and its LSN, when the changes go to the app's own `Database`, where the old client put them).
 */
export class SyncClientCompat {
  readonly #service: WorkerSyncService;
  /** Settles when every operation queued through this layer so far has settled. */
  #tail: Promise<unknown> = Promise.resolve();
  #stateListener: StateListener | null = null;
  #offState: (() => void) | undefined;

  constructor(service: WorkerSyncService = new WorkerSyncService({ legacyState: true })) {
    this.#service = service;
    // The older client's localStorage state is carried over on first start, however it starts.
    if (!service.started) service.configure({ legacyState: true });
  }

  /** The client underneath, for the methods the older one did not have. */
  get service(): WorkerSyncService {
    return this.#service;
  }

  /** Starts the client, with the app's own database when given. Safe to call more than once. */
  initialize(db?: Database): Promise<void> {
    return this.#service.initialize(db);
  }

  async connect(): Promise<void> {
    await this.initialize();
    await this.#service.connect();
  }

  async forceConnect(): Promise<void> {
    await this.initialize();
    await this.#service.forceConnect();
  }

  disconnect(graceful = true): Promise<void> {
    return this.#service.disconnect(graceful);
  }

  getState(): SyncState {
    return this.#service.getState();
  }

  getNetworkStatus(): NetworkStatus {
    return this.#service.getNetworkStatus();
  }

  /** The older client's single state listener: setting one replaces the last, `null` removes it. */
  get onStateChange(): StateListener | null {
    return this.#stateListener;
  }

  set onStateChange(listener: StateListener | null) {
    this.#offState?.();
    this.#offState = undefined;
    this.#stateListener = typeof listener === 'function' ? listener : null;
    if (this.#stateListener) this.#offState = this.#service.onStateChange(this.#stateListener);
  }

  /**
   * Queues an operation of the older client. One with `execute` runs that function on the page
   * once every operation queued before it has been answered (functions cannot be stored or sent
   * to the worker), and it does not survive a reload. Any other is stored durably and sent as
   * `{ type, payload }` (`data` when there is no `payload`). Its `resolve`/`reject` are called with
   * the outcome; the returned promise carries the same outcome.
   */
  queueOperation(operation: SyncOperation): Promise<unknown> {
    const { outcome } = this.#queue(operation);
    outcome.catch(() => undefined);
    return outcome;
  }

  /** Queues like {@link queueOperation}; resolves with the id once it is stored (or waiting its turn). */
  async storeOperation(operation: SyncOperation): Promise<string> {
    return (await this.#queue(operation).stored).id;
  }

  /** Takes its place in the order at once (synchronously), whatever storing it takes. */
  #queue(operation: SyncOperation): { stored: Promise<{ id: string }>; outcome: Promise<unknown> } {
    const stored = typeof operation?.execute === 'function'
      ? Promise.resolve(this.#runInTurn(operation as SyncOperation & { execute: () => unknown }))
      : this.#store(operation);
    const outcome = stored.then((queued) => queued.outcome);
    this.#tail = Promise.allSettled([this.#tail, outcome]);
    outcome.then(
      (value) => callback(operation?.resolve, value),
      (error: unknown) => callback(operation?.reject, toError(error)),
    );
    return { stored, outcome };
  }

  async #store(operation: SyncOperation): Promise<{ id: string; outcome: Promise<OperationResult> }> {
    if (typeof operation !== 'object' || operation === null) throw new TypeError('An operation must be an object');
    await this.initialize();
    const { id, acknowledged } = await this.#service.storeOperation({
      type: operation.type,
      payload: operation.payload !== undefined ? operation.payload : operation.data,
      ...(operation.id === undefined ? {} : { id: operation.id }),
      ...(operation.priority === undefined ? {} : { priority: operation.priority }),
    });
    return { id, outcome: acknowledged };
  }

  #runInTurn(operation: SyncOperation & { execute: () => unknown }): { id: string; outcome: Promise<unknown> } {
    const before = Promise.allSettled([this.#tail, this.#service.operationsSettled()]);
    const outcome = before.then(() => {
      // The operations before it were not answered but handed to the next client: not its turn.
      if (this.#service.closed) throw new SyncError('closed', 'The sync client was cleaned up before this operation\'s turn; it did not run');
      return operation.execute();
    });
    return { id: operation.id ?? crypto.randomUUID(), outcome };
  }

  /** Stops the client; its unacknowledged operations stay queued for the next client. */
  async cleanup(): Promise<void> {
    this.onStateChange = null;
    await this.#service.cleanup();
  }
}

function callback<T>(fn: ((value: T) => void) | undefined, value: T): void {
  if (typeof fn !== 'function') return;
  try {
    fn(value);
  } catch (error) {
    // The app's callback failing must not break the queue; surface it like the DOM does.
    queueMicrotask(() => { throw error; });
  }
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
