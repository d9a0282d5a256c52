import { expect } from '@open-wc/testing';
import type { SyncState } from '../src/protocol/state.ts';
import type { WorkerEvent, WorkerToPage } from '../src/protocol/worker-messages.ts';
import { within } from './helpers/wait.ts';
import { deleteDatabase, uniqueDbName } from './worker/harness.ts';

describe('sync worker: production entry', () => {
  it('serves the page protocol with the real WebSocket and retries a refused endpoint', async () => {
    const dbName = uniqueDbName();
    const worker = new Worker(new URL('../src/worker/sync-worker.ts', import.meta.url), { type: 'module' });
    const events: WorkerEvent[] = [];
    const results = new Map<number, WorkerToPage>();
    let notify = (): void => {};
    worker.addEventListener('message', (event: MessageEvent<WorkerToPage>) => {
      if (event.data.type === 'result') results.set(event.data.requestId, event.data);
      else events.push(event.data);
      notify();
    });
    const until = <T>(what: string, check: () => T | undefined): Promise<T> => within(new Promise((resolve) => {
      notify = () => {
        const value = check();
        if (value !== undefined) resolve(value);
      };
      notify();
    }), what, 5_000);
    try {
      worker.postMessage({
        type: 'init',
        requestId: 1,
        config: {
          url: 'ws://127.0.0.1:59999/sync', // nothing listens there
          clientId: '',
          dbName,
          heartbeatInterval: 5_000,
          backoffInitial: 10,
          backoffMax: 20,
        },
      });
      const init = await until('the answer to init', () => results.get(1));
      if (init.type !== 'result' || !init.ok) throw new Error(`init failed: ${JSON.stringify(init)}`);
      expect((init.value as SyncState).clientId).to.be.a('string').and.not.equal('');
      worker.postMessage({ type: 'connect', requestId: 2 });
      const retry = await until('a reconnecting event', () => events.find((event) => event.type === 'reconnecting'));
      expect(retry).to.include({ type: 'reconnecting', attempt: 1 });
      // A dial that never opened reports only the retry, not a disconnection.
      expect(events.filter((event) => event.type === 'disconnected')).to.have.length(0);
    } finally {
      worker.terminate();
      await deleteDatabase(dbName);
    }
  });
});
