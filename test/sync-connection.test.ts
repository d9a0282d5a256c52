import { expect } from '@open-wc/testing';
import '../src/index.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import type { SyncState } from '../src/protocol/state.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { sleep, waitFor } from './helpers/wait.ts';

/** <sync-connection> over the real worker engine and a mock-socket server inside the worker. */
describe('<sync-connection> with a scripted server', () => {
  let mock: MockWorkers;
  let dbName: string;
  let element: SyncConnectionElement;

  function mount(attributes: Record<string, string | boolean> = {}): SyncConnectionElement {
    element = createSyncElement({
      url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50', ...attributes,
    });
    element.createWorker = mock.create;
    document.body.append(element);
    return element;
  }

  const connected = () => waitFor(() => element.getAttribute('status') === 'connected', 'status connected');

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    element?.remove();
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('reports a malformed frame as a protocol error, passes unknown types on, and stays connected', async () => {
    mount();
    await connected();
    const seen = record(element, ['error', 'message', 'changes']);
    await mock.send('{not json', { type: 'custom_hello', greeting: 'hi' },
      { type: 'changes', lsn: '0/10', changes: [{ type: 'update', entityType: 't', entityId: '1', data: { ok: true } }] });
    await seen.waitFor('changes');
    expect(seen.types()).to.deep.equal(['error', 'message', 'changes']);
    const [error, message] = seen.entries;
    expect(seen.of('error')[0]?.code).to.equal('protocol');
    expect(error?.event?.bubbles).to.equal(false);
    expect(seen.of('message')[0]?.message).to.deep.equal({ type: 'custom_hello', greeting: 'hi' });
    expect(message?.event?.bubbles).to.equal(true);
    expect(message?.event?.composed).to.equal(true);
    expect(element.getAttribute('status')).to.equal('connected');
    expect(element.getAttribute('last-lsn')).to.equal('0/10');
    expect(mock.connections).to.equal(1);
  });

  it('skips an invalid change item with an invalid_change error and applies the rest', async () => {
    mount();
    await connected();
    const errors = record(element, ['error']);
    await mock.send({ type: 'changes', lsn: '0/20', changes: [
      { type: 'update', entityType: 't', entityId: 'a', data: 1 },
      { type: 'update', entityType: 't', entityId: 'b' },
      { type: 'rename', entityType: 't', entityId: 'c' },
      { type: 'update', entityType: 't', entityId: 'd', data: 4 },
    ] });
    await waitFor(() => element.getAttribute('last-lsn') === '0/20', 'the batch applied');
    expect((await element.getEntities('t')).map((e) => e.entityId)).to.deep.equal(['a', 'd']);
    expect(errors.entries).to.have.length(1);
    const [detail] = errors.of('error');
    expect(detail?.code).to.equal('invalid_change');
    expect(detail?.message).to.contain('#1').and.contain('#2');
  });

  it('fires sync_started, sync_progress and sync_completed with their details, syncing in between', async () => {
    mount();
    await connected();
    const seen = record(element, ['sync_started', 'sync_progress', 'sync_completed']);
    const syncingDuringProgress: boolean[] = [];
    element.addEventListener('sync_progress', () => syncingDuringProgress.push(element.hasAttribute('syncing')));
    const update = (id: string) => ({ type: 'update', entityType: 't', entityId: id, data: id });
    await mock.send(
      { type: 'sync_start', lsn: '0/30', total: 3 },
      { type: 'changes', lsn: '0/2A', changes: [update('x'), update('y')] },
      { type: 'changes', lsn: '0/30', changes: [update('z')] },
      { type: 'sync_complete', lsn: '0/30' },
    );
    await seen.waitFor('sync_completed');
    expect(seen.entries.map((e) => [e.type, e.detail])).to.deep.equal([
      ['sync_started', { lsn: '0/30', total: 3 }],
      ['sync_progress', { applied: 2, total: 3 }],
      ['sync_progress', { applied: 3, total: 3 }],
      ['sync_completed', { lsn: '0/30' }],
    ]);
    expect(syncingDuringProgress).to.deep.equal([true, true]);
    expect(element.hasAttribute('syncing')).to.equal(false);
  });

  it('sets status error, fires error with code closed and stops retrying after close code 4001', async () => {
    mount();
    await connected();
    const seen = record(element, ['error', 'reconnecting', 'disconnected']);
    await mock.command({ mock: 'close', code: 4001, reason: 'unauthorized' });
    await waitFor(() => element.getAttribute('status') === 'error', 'status error');
    const [error] = seen.of('error');
    expect(error?.code).to.equal('closed');
    expect(error?.message).to.contain('4001').and.contain('unauthorized');
    expect(seen.of('disconnected')[0]?.willReconnect).to.equal(false);
    await sleep(200); // a retry would come from the backoff timer (20-50 ms here), so none can be waited for: outlast it several times
    expect(seen.of('reconnecting')).to.have.length(0);
    expect(mock.connections).to.equal(1);
    expect(element.getState().lastError?.code).to.equal('closed');
  });

  it('hands out a new frozen snapshot on every change', async () => {
    const states: SyncState[] = [];
    mount();
    const off = element.onStateChange((state) => states.push(state));
    await connected();
    off();
    expect(states.length).to.be.greaterThan(1);
    expect(states.every((state) => Object.isFrozen(state))).to.equal(true);
    expect(new Set(states).size).to.equal(states.length);
    expect(states.at(-1)).to.equal(element.getState());
  });

  it('starts a connection when an operation is queued on a manual element that is not connected', async () => {
    mount({ manual: true });
    await waitFor(() => element.getState().clientId !== '', 'the stored state loaded');
    expect(element.getAttribute('status')).to.equal('disconnected');
    expect(mock.connections).to.equal(0);
    const result = element.queueOperation({ type: 'upsert', id: 'm-1', payload: { n: 1 } });
    await waitFor(() => mock.framesOf('operation').length === 1, 'the operation frame at the server');
    await mock.send({ type: 'operation_complete', id: 'm-1', lsn: '0/99' });
    expect(await result).to.deep.equal({ id: 'm-1', lsn: '0/99' });
    expect(element.getAttribute('status')).to.equal('connected');
  });

  it('reports a dead worker, starts a new one, and still settles the operations queued before', async () => {
    mount();
    await connected();
    const seen = record(element, ['error', 'connected']);
    const pending = element.queueOperation({ type: 'upsert', id: 'w-1', payload: { n: 1 } });
    await waitFor(() => mock.framesOf('operation').length === 1, 'the operation sent by the first worker');
    // What the page sees when the worker script throws: an ErrorEvent on the Worker object.
    mock.workers[0]!.dispatchEvent(new ErrorEvent('error', { message: 'out of memory', cancelable: true }));
    expect((await seen.waitFor('error')).code).to.equal('worker');
    expect(element.getAttribute('status')).to.equal('error');
    await seen.waitFor('connected');
    expect(mock.workers).to.have.length(2);
    await waitFor(() => mock.framesOf('operation').length === 2, 'the operation re-sent by the new worker');
    expect(mock.framesOf('operation')[1]!.operation).to.deep.include({ id: 'w-1' });
    await mock.send({ type: 'operation_complete', id: 'w-1', lsn: '0/5' });
    expect(await pending).to.deep.equal({ id: 'w-1', lsn: '0/5' });
    await waitFor(() => element.getAttribute('pending') === '0', 'pending 0');
  });
});
