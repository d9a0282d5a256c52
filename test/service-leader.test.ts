import { expect } from '@open-wc/testing';
import { WorkerSyncService } from '../src/client/sync-service.ts';
import type { SyncErrorDetail } from '../src/protocol/state.ts';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { waitFor } from './helpers/wait.ts';
import { MockWorkers } from './helpers/mock-worker.ts';

/** WorkerSyncService over the real worker engine and a mock-socket server inside the worker. */
describe('a leading tab whose worker died', () => {
  let mock: MockWorkers;
  let dbName: string;
  let service: WorkerSyncService;

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
    // A restart far away: whatever happens meanwhile is the leader's doing, not the backoff's.
    service = new WorkerSyncService({
      url: MockWorkers.url, dbName, createWorker: mock.create, workerRestartDelay: 60_000, backoffInitial: 20, backoffMax: 50,
    });
  });

  afterEach(async () => {
    await service.cleanup();
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('stays the leader, and clears the queue through a worker it starts at once instead of asking another tab', async () => {
    await service.connect();
    await waitFor(() => service.getState().status === 'connected', 'connected');
    const errors: SyncErrorDetail[] = [];
    service.on('error', (detail) => errors.push(detail));
    const stored = await service.storeOperation({ type: 'upsert', id: 'r-1', payload: {} });
    const outcome = stored.acknowledged.then(() => undefined, (error: Error) => error);
    // What the page sees when the worker script throws: an ErrorEvent on the Worker object.
    mock.workers[0]!.dispatchEvent(new ErrorEvent('error', { message: 'out of memory', cancelable: true }));
    await waitFor(() => errors.length === 1, 'the worker error');
    expect(service.getState()).to.include({ status: 'error', role: 'leader' });
    expect(await service.clearOperationQueue()).to.equal(1);
    expect(mock.workers, 'a worker started for the clear, long before the restart delay').to.have.length(2);
    expect((await outcome)?.message).to.equal('Operation cancelled due to client cleanup');
    expect(service.getState().pendingOperations).to.equal(0);
  });
});
