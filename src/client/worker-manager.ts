import { errorMessage, reviveError, SyncError } from '../protocol/errors.ts';
import type { SyncErrorDetail } from '../protocol/state.ts';
import type {
  PageToWorker,
  WorkerEvent,
  WorkerToPage,
} from '../protocol/worker-messages.ts';
import type { WorkerEndpoint } from './worker-endpoint.ts';

type Outgoing = PageToWorker extends infer M
  ? M extends { requestId: number } ? Omit<M, 'requestId'> : never
  : never;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

export interface WorkerManagerCallbacks {
  onEvent(event: WorkerEvent): void;
  /** The worker failed to load or died; every pending request has been rejected. */
  onWorkerError(detail: SyncErrorDetail): void;
  /**
   * Prepares each worker started (the first and every restart) before {@link SyncWorkerManager.ready}
   * resolves: sends `init` and whatever else it needs.
   */
  prepare?(): Promise<void>;
}

export interface WorkerManagerOptions {
  /**
   * Restarts a worker that died after this many ms, doubling per failure up to 30 s and starting
   * over once a worker connects. Without it a dead worker stays dead.
   */
  restartDelay?: number;
}

const MAX_RESTART_DELAY = 30_000;

/**
 * Owns the sync worker: starts it, sends typed requests and matches each answer to its request,
 * hands the worker's events on. When the worker fails to load or dies, every pending request is
 * rejected, never left hanging, and (with a `restartDelay`) a new one starts after a backoff,
 * until `terminate`.
 */
export class SyncWorkerManager {
  #endpoint: WorkerEndpoint | undefined;
  #abort: AbortController | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #createEndpoint: () => WorkerEndpoint;
  readonly #callbacks: WorkerManagerCallbacks;
  readonly #restartDelay: number | undefined;
  /** Between `start` and `terminate`: a worker that dies is replaced. */
  #wanted = false;
  #failures = 0;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  #ready: Promise<void> | undefined;

  constructor(createEndpoint: () => WorkerEndpoint, callbacks: WorkerManagerCallbacks, options: WorkerManagerOptions = {}) {
    this.#createEndpoint = createEndpoint;
    this.#callbacks = callbacks;
    this.#restartDelay = options.restartDelay;
  }

  /** A worker is started (it may still be preparing). */
  get running(): boolean {
    return this.#endpoint !== undefined;
  }

  /** Settles when the current worker is prepared; `undefined` before the first start. */
  get ready(): Promise<void> | undefined {
    return this.#ready;
  }

  /** Starts the worker if it is not running, and keeps one running until `terminate`. */
  start(): void {
    this.#wanted = true;
    if (this.#endpoint) return;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const abort = new AbortController();
    let endpoint: WorkerEndpoint;
    try {
      endpoint = this.#createEndpoint();
    } catch (cause) {
      const message = `The sync worker could not be started: ${errorMessage(cause)}`;
      this.#ready = Promise.reject(new SyncError('worker', message, { cause }));
      this.#ready.catch(() => undefined);
      this.#fail(message, cause);
      return;
    }
    this.#abort = abort;
    this.#endpoint = endpoint;
    const { signal } = abort;
    endpoint.addEventListener('message', (event) => this.#receive(event.data), { signal });
    endpoint.addEventListener('error', (event) => {
      event.preventDefault();
      const message = event instanceof ErrorEvent && event.message
        ? event.message
        : 'the worker script failed to load or threw';
      this.#fail(`The sync worker died: ${message}`, event instanceof ErrorEvent ? event.error : undefined);
    }, { signal });
    endpoint.addEventListener('messageerror', () => {
      this.#callbacks.onEvent({
        type: 'error',
        code: 'worker',
        message: 'A message from the sync worker could not be deserialised',
      });
    }, { signal });
    const ready = this.#callbacks.prepare?.() ?? Promise.resolve();
    ready.catch(() => undefined); // the preparation reports its own failures; callers of `ready` see them
    this.#ready = ready;
  }

  /**
   * Resolves once a worker is started and prepared; a worker waiting for its restart is started
   * now. Rejects when the manager was terminated, or when that worker fails.
   */
  async whenReady(): Promise<void> {
    if (!this.#wanted) throw new SyncError('worker', 'The sync worker is not running');
    if (!this.#endpoint) this.start();
    await this.#ready;
  }

  /** Sends a request and resolves with the worker's answer. */
  request<T = unknown>(message: Outgoing): Promise<T> {
    const endpoint = this.#endpoint;
    if (!endpoint) {
      return Promise.reject(new SyncError('worker', 'The sync worker is not running'));
    }
    const requestId = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(requestId, { resolve: resolve as (value: unknown) => void, reject });
      try {
        endpoint.postMessage({ ...message, requestId } as PageToWorker);
      } catch (cause) {
        this.#pending.delete(requestId);
        reject(new SyncError('worker', `Could not send "${message.type}" to the worker: ${errorMessage(cause)}`, { cause }));
      }
    });
  }

  /** Stops the worker for good (no restart); pending requests are rejected with `reason`. */
  terminate(reason = 'The sync worker was stopped'): void {
    this.#wanted = false;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const endpoint = this.#endpoint;
    if (!endpoint) return;
    this.#endpoint = undefined;
    this.#abort?.abort();
    endpoint.terminate();
    this.#rejectAll(new SyncError('worker', reason));
  }

  #receive(message: WorkerToPage): void {
    if (message.type === 'result') {
      const pending = this.#pending.get(message.requestId);
      if (!pending) return;
      this.#pending.delete(message.requestId);
      if (message.ok) pending.resolve(message.value);
      else pending.reject(reviveError(message.error));
      return;
    }
    // A worker that connects works: the next failure restarts after the first delay again.
    if (message.type === 'connected') this.#failures = 0;
    this.#callbacks.onEvent(message);
  }

  #fail(message: string, cause: unknown): void {
    const endpoint = this.#endpoint;
    this.#endpoint = undefined;
    this.#abort?.abort();
    endpoint?.terminate();
    this.#rejectAll(new SyncError('worker', message, { cause }));
    this.#callbacks.onWorkerError({ code: 'worker', message, ...(cause === undefined ? {} : { cause }) });
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    if (!this.#wanted || this.#restartDelay === undefined) return;
    const delay = Math.min(MAX_RESTART_DELAY, this.#restartDelay * 2 ** this.#failures);
    this.#failures += 1;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#wanted) this.start();
    }, delay);
  }

  #rejectAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(error);
  }
}
