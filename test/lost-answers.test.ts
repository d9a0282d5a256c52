import { expect } from '@open-wc/testing';
import { WorkerSyncService } from '../src/client/sync-service.ts';
import { LocalStore } from '../src/db/local-store.ts';
import type { OperationResult } from '../src/protocol/state.ts';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { waitFor, within } from './helpers/wait.ts';

/**
 * A worker that throws runs on until its page terminates it: it can take an answered operation's
 * record out of the outbox while its page no longer listens, so the answer never arrives. What a
 * worker did then is done here by hand: the record is deleted straight from IndexedDB.
 */
async function takeOutOfOutbox(dbName: string, id: string): Promise<void> {
  const store = await LocalStore.open(dbName);
  try {
    await store.deleteOperations([{ id }]);
    expect(await store.storedOperationIds([id])).to.have.property('size', 0);
  } finally {
    store.close();
  }
}

/** The real worker engine and a mock-socket server inside each worker. */
describe('an operation whose answer was lost with the worker that took its record out', () => {
  let mock: MockWorkers;
  let dbName: string;
  const services: WorkerSyncService[] = [];

  const start = (): WorkerSyncService => {
    const service = new WorkerSyncService({
      url: MockWorkers.url, dbName, createWorker: mock.create, workerRestartDelay: 20, backoffInitial: 20, backoffMax: 50,
    });
    services.push(service);
    return service;
  };

  const sent = (id: string): number => mock.framesOf('operation').filter((frame) => (frame.operation as { id?: unknown }).id === id).length;

  /** One tab, connected, whose operation `id` was sent. */
  const sentByOneTab = async (id: string) => {
    const service = start();
    await service.connect();
    await waitFor(() => service.getState().status === 'connected', 'connected');
    const answer = service.queueOperation({ type: 'touch', id, payload: {} });
    await waitFor(() => sent(id) === 1, 'the operation sent');
    return { service, answer };
  };

  /** A leader and a follower; the follower's operation `id` was sent by the leader, its record taken out. */
  const followerOperationTakenOut = async (id: string) => {
    const leader = start();
    await leader.connect();
    await waitFor(() => leader.getState().status === 'connected', 'the leader connected');
    const follower = start();
    await follower.connect();
    expect(follower.getState().role).to.equal('follower');
    const answer = follower.queueOperation({ type: 'touch', id, payload: {} });
    await waitFor(() => sent(id) === 1, 'the operation sent by the leader');
    await takeOutOfOutbox(dbName, id);
    return { leader, follower, answer };
  };

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const service of services.splice(0)) await service.cleanup();
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('is sent again by the restarted worker, and its promise resolves with the server\'s answer', async () => {
    const { answer } = await sentByOneTab('lost-1');
    await takeOutOfOutbox(dbName, 'lost-1');
    // What the page sees when the worker script throws: an ErrorEvent on the Worker object.
    mock.workers[0]!.dispatchEvent(new ErrorEvent('error', { message: 'crashed', cancelable: true }));
    await waitFor(() => sent('lost-1') === 2, 'the operation sent again, with its id, by the next worker');
    expect(mock.workers).to.have.length(2);
    await mock.send({ type: 'operation_complete', id: 'lost-1', lsn: '0/7' });
    expect(await within<OperationResult>(answer, 'the answer')).to.deep.equal({ id: 'lost-1', lsn: '0/7' });
  });

  it('held by a follower is sent again when that follower takes over from a leader that closed', async () => {
    const { leader, follower, answer } = await followerOperationTakenOut('lost-2');
    await leader.cleanup();
    await waitFor(() => follower.getState().role === 'leader', 'the follower leads');
    await waitFor(() => sent('lost-2') === 2, 'the operation sent again, with its id, by the new leader');
    await mock.send({ type: 'operation_complete', id: 'lost-2', lsn: '0/8' });
    expect(await within<OperationResult>(answer, 'the answer')).to.deep.equal({ id: 'lost-2', lsn: '0/8' });
  });

  it('held by a follower is sent again when the leader\'s worker restarts, and the leader relays the answer', async () => {
    const { follower, answer } = await followerOperationTakenOut('lost-3');
    mock.workers[0]!.dispatchEvent(new ErrorEvent('error', { message: 'crashed', cancelable: true }));
    await waitFor(() => sent('lost-3') === 2, 'the operation sent again, with its id, by the leader\'s next worker');
    expect(follower.getState().role).to.equal('follower');
    await mock.send({ type: 'operation_complete', id: 'lost-3', lsn: '0/9' });
    expect(await within<OperationResult>(answer, 'the answer')).to.deep.equal({ id: 'lost-3', lsn: '0/9' });
  });

  it('is not sent again while its record is still in the outbox: the next worker sends it once', async () => {
    const { service, answer } = await sentByOneTab('kept-1');
    mock.workers[0]!.dispatchEvent(new ErrorEvent('error', { message: 'crashed', cancelable: true }));
    await waitFor(() => sent('kept-1') === 2, 'the operation sent again by the next worker');
    await mock.send({ type: 'operation_complete', id: 'kept-1', lsn: '0/9' });
    expect(await within<OperationResult>(answer, 'the answer')).to.deep.equal({ id: 'kept-1', lsn: '0/9' });
    expect(sent('kept-1'), 'once per worker: the record it loaded is not stored a second time').to.equal(2);
    expect((await service.getStatus()).pendingOperations).to.equal(0);
  });
});
