import type { WorkerEndpoint } from '../../src/client/worker-endpoint.ts';

/** What spy-sync-worker.ts saw: the URLs its WebSocket dialled and the frames it sent. */
export class SpyWorkers {
  readonly dialled: string[] = [];
  readonly sent: string[] = [];
  readonly workers: Worker[] = [];

  /** For `element.createWorker`: the real engine and WebSocket, observed. */
  readonly create = (): WorkerEndpoint => {
    const worker = new Worker(new URL('./spy-sync-worker.ts', import.meta.url), { type: 'module' });
    worker.addEventListener('message', (event: MessageEvent) => {
      const data = event.data as { spy?: unknown; url?: unknown; data?: unknown } | null;
      if (data?.spy === 'dial' && typeof data.url === 'string') this.dialled.push(data.url);
      if (data?.spy === 'sent' && typeof data.data === 'string') this.sent.push(data.data);
    });
    this.workers.push(worker);
    return worker as unknown as WorkerEndpoint;
  };

  terminateAll(): void {
    for (const worker of this.workers) worker.terminate();
  }
}
