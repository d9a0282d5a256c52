import type { WorkerEndpoint } from '../../src/client/worker-endpoint.ts';
import { isMockMessage, MOCK_SERVER_URL, type MockCommand, type MockReport } from '../worker/mock-protocol.ts';

type Command = MockCommand extends infer C ? C extends { id: number } ? Omit<C, 'id'> : never : never;

/**
 * Starts the real sync engine in a worker that dials a mock-socket server living in that worker,
 * for elements under test (`element.createWorker = mock.create`). Commands go to the newest worker.
 */
export class MockWorkers {
  static readonly url = MOCK_SERVER_URL;
  readonly workers: Worker[] = [];
  /** What the mock servers received, newest worker last. */
  readonly frames: Record<string, unknown>[] = [];
  connections = 0;
  #nextId = 1;
  readonly #replies = new Map<number, (report: MockReport & { mock: 'reply' }) => void>();

  /** Every call starts a new worker, as the service does after one dies. */
  readonly create = (): WorkerEndpoint => {
    const worker = new Worker(new URL('../worker/mock-sync-worker.ts', import.meta.url), { type: 'module' });
    worker.addEventListener('message', (event: MessageEvent) => {
      const report = event.data as unknown;
      if (!isMockMessage(report)) return;
      const typed = report as MockReport;
      if (typed.mock === 'reply') this.#replies.get(typed.id)?.(typed);
      else if (typed.mock === 'connection') this.connections += 1;
      else if (typed.mock === 'frame' && typeof typed.frame === 'object' && typed.frame !== null) {
        this.frames.push(typed.frame as Record<string, unknown>);
      }
    });
    this.workers.push(worker);
    return worker as unknown as WorkerEndpoint;
  };

  framesOf(type: string): Record<string, unknown>[] {
    return this.frames.filter((frame) => frame.type === type);
  }

  async command(command: Command): Promise<void> {
    const worker = this.workers.at(-1);
    if (!worker) throw new Error('no mock worker started yet');
    const id = this.#nextId++;
    const reply = new Promise<MockReport & { mock: 'reply' }>((resolve) => this.#replies.set(id, resolve));
    worker.postMessage({ ...command, id });
    const answer = await reply;
    if (!answer.ok) throw new Error(answer.error ?? 'mock command failed');
  }

  send(...frames: unknown[]): Promise<void> {
    return this.command({ mock: 'send', frames });
  }

  terminateAll(): void {
    for (const worker of this.workers) worker.terminate();
  }
}
