import type { PageToWorker, WorkerToPage } from '../protocol/worker-messages.ts';

/**
 * The part of a `Worker` the page side needs. A `MessagePort` wrapped with a `terminate` does as
 * well, which keeps the page-side logic testable without a real worker.
 */
export interface WorkerEndpoint {
  postMessage(message: PageToWorker): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<WorkerToPage>) => void, options?: AddEventListenerOptions): void;
  addEventListener(type: 'error' | 'messageerror', listener: (event: Event) => void, options?: AddEventListenerOptions): void;
  terminate(): void;
}

/** Starts the production sync worker. */
export function createSyncWorker(): WorkerEndpoint {
  return new Worker(new URL('../worker/sync-worker.ts', import.meta.url), {
    type: 'module',
    name: 'sync-connection',
  }) as WorkerEndpoint;
}
