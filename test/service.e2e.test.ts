import { expect } from '@open-wc/testing';
import { SyncError } from '../src/protocol/errors.ts';
import { WorkerSyncService } from '../src/client/sync-service.ts';
import type { SyncState } from '../src/protocol/state.ts';
import { compareLSN } from '../src/protocol/lsn.ts';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { sleep, waitFor } from './helpers/wait.ts';

describe('WorkerSyncService without an element, against the reference server', () => {
  const server = useReferenceServer();
  let dbName: string;
  const services: WorkerSyncService[] = [];

  function client(): WorkerSyncService {
    const service = new WorkerSyncService({ url: server.wsUrl, dbName, backoffInitial: 50, backoffMax: 300 });
    services.push(service);
    return service;
  }

  beforeEach(() => {
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const service of services.splice(0)) await service.cleanup();
    await deleteDatabase(dbName);
  });

  it('initialize loads the stored state without connecting; getState has the fields of the older SyncClient\'s state', async () => {
    const service = client();
    await service.initialize();
    const state = service.getState();
    expect(state.clientId, 'a client id is created').to.match(/^[0-9a-f-]{36}$/);
    expect(state).to.include({ lastLSN: '0/0', isConnected: false, isConnecting: false, reconnectAttempts: 0, status: 'disconnected', pendingOperations: 0 });
    expect(state.role).to.be.oneOf(['leader', 'follower']);
    expect(service.isConnected()).to.equal(false);
    expect((await server.stats()).clients, 'no socket was opened').to.equal(0);
    expect(Object.isFrozen(state), 'the snapshot is immutable').to.equal(true);
  });

  it('connect, events through addEventListener and onStateChange, getStatus from the worker, sendSyncMessage', async () => {
    const lsn = await server.post(notes(2));
    const service = client();
    const seen: string[] = [];
    const removeConnected = service.addEventListener('connected', () => seen.push('connected'));
    service.addEventListener('sync_completed', ({ lsn: at }) => seen.push(`sync_completed ${at}`));
    const states: SyncState[] = [];
    const unsubscribe = service.onStateChange((state) => states.push(state));

    await service.connect();
    await waitFor(() => seen.includes(`sync_completed ${lsn}`), 'the catch-up');
    expect(service.isConnected()).to.equal(true);
    expect(states.some((state) => state.status === 'connecting' || state.isConnecting), 'a connecting state was seen').to.equal(true);
    expect(states.at(-1)!.status).to.equal('connected');
    const status = await service.getStatus();
    expect(status).to.include({ status: 'connected', isConnected: true, lastLSN: lsn, clientId: service.getState().clientId });

    // Removed listeners hear nothing more.
    removeConnected();
    unsubscribe();
    const statesBefore = states.length;
    await service.sendSyncMessage();
    await waitFor(() => seen.filter((entry) => entry.startsWith('sync_completed')).length === 2, 'a second catch-up after sendSyncMessage');
    expect(states.length, 'onStateChange listener removed').to.equal(statesBefore);

    await service.disconnect(true);
    await service.connect();
    await waitFor(() => service.isConnected(), 'connected again');
    expect(seen.filter((entry) => entry === 'connected'), 'the removed connected listener').to.have.length(1);
  });

  it('queueOperation resolves when the server acknowledges; the change is on the server and comes back', async () => {
    const service = client();
    await service.connect();
    const result = await service.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: 'a', data: { text: 'hi' } } });
    expect(result.id).to.be.a('string');
    expect(result.lsn, 'acknowledged with the LSN of its change').to.be.a('string');
    const { entities } = await server.entities();
    expect(entities).to.deep.include({ entityType: 'note', entityId: 'a', data: { text: 'hi' } });
    await waitFor(async () => (await service.getEntity('note', 'a'))?.lsn !== undefined, 'the change applied locally');
    expect(compareLSN(service.getState().lastLSN, result.lsn!)).to.be.at.least(0);
    expect((await service.getEntities('note')).map((entity) => entity.entityId)).to.deep.equal(['a']);
  });

  it('disconnect(graceful) closes and stays closed; forceConnect connects at once', async () => {
    const service = client();
    await service.connect();
    await waitFor(() => service.isConnected(), 'connected');
    await service.disconnect(true);
    expect(service.getState()).to.include({ status: 'disconnected', isConnected: false });
    await waitFor(async () => (await server.stats()).clients === 0, 'the server to see the socket close');
    await sleep(400); // a reconnection would come from the backoff timer (50-300 ms), so none can be waited for: outlast its cap
    expect(service.isConnected(), 'no reconnection after disconnect').to.equal(false);
    await service.forceConnect();
    await waitFor(() => service.isConnected(), 'connected after forceConnect', 3000);
  });

  it('clearOperationQueue drops what the server has not acknowledged; their promises reject', async () => {
    const service = client();
    await service.connect();
    await waitFor(() => service.isConnected(), 'connected');
    await server.stop();
    const queued = [1, 2].map((n) => service.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: `c${n}`, data: {} } }));
    const outcomes = Promise.allSettled(queued);
    await waitFor(() => service.getState().pendingOperations === 2, 'two pending');
    expect(await service.clearOperationQueue()).to.equal(2);
    const settled = await outcomes;
    expect(settled.map((outcome) => outcome.status)).to.deep.equal(['rejected', 'rejected']);
    expect(String((settled[0] as PromiseRejectedResult).reason)).to.contain('cancelled');
    await server.startAgain();
    await waitFor(() => service.isConnected(), 'reconnected');
    expect((await server.stats()).operationsApplied, 'nothing cleared was sent').to.equal(0);
    expect(service.getState().pendingOperations).to.equal(0);
  });

  it('getNetworkStatus reports the browser\'s view', () => {
    const status = client().getNetworkStatus();
    expect(status.online).to.equal(navigator.onLine);
  });

  it('cleanup stops the worker and the socket; the client cannot be used again', async () => {
    const service = client();
    await service.connect();
    await waitFor(() => service.isConnected(), 'connected');
    await service.cleanup();
    expect(service.isConnected()).to.equal(false);
    await waitFor(async () => (await server.stats()).clients === 0, 'the socket closed');
    let error: unknown;
    await service.connect().catch((caught: unknown) => { error = caught; });
    expect(error).to.be.instanceOf(SyncError);
  });

  it('configure before start sets the options; after start it throws', async () => {
    const service = new WorkerSyncService();
    services.push(service);
    service.configure({ url: server.wsUrl, dbName });
    await service.connect();
    await waitFor(() => service.isConnected(), 'connected with the configured url');
    expect(() => service.configure({ url: 'ws://elsewhere.invalid' })).to.throw(/before the client starts/);
  });

  it('storeOperation resolves once stored; operationsSettled waits for what was queued before it; a duplicate id at once is refused', async () => {
    await server.stop();
    const service = client();
    const stored = await service.storeOperation({ id: 'kept', type: 'upsert', payload: { entityType: 'note', entityId: 'k', data: {} } });
    expect(stored.id).to.equal('kept');
    await waitFor(() => service.getState().pendingOperations === 1, 'in the outbox, with no server');
    const same = { id: 'same', type: 'upsert', payload: { entityType: 'note', entityId: 's', data: {} } };
    const [first, second] = await Promise.allSettled([service.storeOperation(same), service.storeOperation(same)]);
    expect(first.status).to.equal('fulfilled');
    expect(second.status, 'the second of two at once').to.equal('rejected');
    expect(String((second as PromiseRejectedResult).reason)).to.contain('already queued');
    await waitFor(() => service.getState().pendingOperations === 2, 'both in the outbox, with no server');
    let settled = false;
    const all = service.operationsSettled().then(() => { settled = true; });
    await service.getStatus(); // a round trip to the worker, after which an early resolution would show
    expect(settled, 'nothing answered yet').to.equal(false);
    await server.startAgain();
    await all;
    expect((await stored.acknowledged).id).to.equal('kept');
    expect((await server.stats()).operationsApplied).to.equal(2);
  });
});
