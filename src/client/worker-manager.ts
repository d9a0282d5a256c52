import type { SyncErrorDetail } from '../protocol/state.ts';
import type {
  PageToWorker,
  WorkerEvent,
  WorkerToPage,
} from '../protocol/worker-messages.ts';
import { errorMessage, reviveError, SyncError } from '../protocol/errors.ts';
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
}

/**
 * Owns one sync worker: starts it, sends typed requests and matches each answer to its request,
 * hands the worker's events on. When the worker fails to load or dies, every pending request is
 * rejected, never left hanging.
 */
export class SyncWorkerManager {
  #endpoint: WorkerEndpoint | undefined;
  #abort: AbortController | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #createEndpoint: () => WorkerEndpoint;
  readonly #callbacks: WorkerManagerCallbacks;

  constructor(createEndpoint: () => WorkerEndpoint, callbacks: WorkerManagerCallbacks) {
    this.#createEndpoint = createEndpoint;
    this.#callbacks = callbacks;
  }

  get running(): boolean {
    return this.#endpoint !== undefined;
  }

  /** Starts the worker if it is not running. */
  start(): void {
    if (this.#endpoint) return;
    const abort = new AbortController();
    let endpoint: WorkerEndpoint;
    try {
      endpoint = this.#createEndpoint();
    } catch (cause) {
      this.#fail(`The sync worker could not be started: ${errorMessage(cause)}`, cause);
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

  /** Stops the worker; pending requests are rejected with `reason`. */
  terminate(reason = 'The sync worker was stopped'): void {
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
    this.#callbacks.onEvent(message);
  }

  #fail(message: string, cause: unknown): void {
    const endpoint = this.#endpoint;
    this.#endpoint = undefined;
    this.#abort?.abort();
    endpoint?.terminate();
    this.#rejectAll(new SyncError('worker', message, { cause }));
    this.#callbacks.onWorkerError({ code: 'worker', message, ...(cause === undefined ? {} : { cause }) });
  }

  #rejectAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(error);
  }
}
