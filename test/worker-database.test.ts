import { expect } from '@open-wc/testing';
import { DB_VERSION } from '../src/db/schema.ts';
import type { SyncState } from '../src/protocol/state.ts';
import { sleep } from './helpers/wait.ts';
import { WorkerHarness } from './worker/harness.ts';

const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40 };

const update = (entityId: string, data: unknown) => ({ type: 'update', entityType: 'todo', entityId, data });

/** What an app does on logout: delete the database from the page. Resolves once it went through. */
function deleteFromPage(name: string): Promise<'deleted'> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = () => resolve('deleted');
    request.onerror = () => reject(request.error ?? new Error('deleteDatabase failed'));
  });
}

/** Opens the database at a newer version from the page, as a newer app in another tab would. */
function upgradeFromPage(name: string, version: number): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, version);
    request.onupgradeneeded = () => request.result.createObjectStore(`added-in-v${version}`);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('open failed'));
  });
}

describe('sync worker: the database closed under it', () => {
  let harness: WorkerHarness;

  afterEach(async () => {
    await harness.stop();
  });

  /** Connected, caught up at 0/5 with two entities. */
  async function caughtUp(): Promise<string> {
    harness = await WorkerHarness.start({ config: FAST });
    const { frame } = await harness.connect();
    await harness.send(
      { type: 'sync_start', total: 2 },
      { type: 'sync_data', data: [update('1', 'one'), update('2', 'two')], lsn: '0/5' },
      { type: 'sync_complete', lsn: '0/5' },
    );
    await harness.waitForEvent('sync_completed');
    expect(await harness.storedLSN()).to.equal('0/5');
    return frame.clientId as string;
  }

  const storageErrors = (from: number) => harness.eventsOf('error', from).filter((event) => event.code === 'storage');

  it('reopens a database the page deleted: one storage error, then a fresh session from 0/0, reconnected, no loop', async () => {
    const firstClientId = await caughtUp();
    await harness.queue({ id: 'in-flight' });
    await harness.waitForFrame('operation');
    const from = harness.events.length;

    expect(await deleteFromPage(harness.dbName)).to.equal('deleted');

    const resync = await harness.waitFor('a sync on a second connection', () =>
      harness.framesOf('sync').find(({ conn }) => conn === 2));
    expect(resync.frame.lastLSN).to.equal('0/0');
    expect(resync.frame.clientId).to.be.a('string').and.not.equal(firstClientId);
    expect(new URL(harness.connections[1]!.url).searchParams.get('lastLSN')).to.equal('0/0');
    expect(storageErrors(from)).to.have.length(1);
    expect(harness.eventsOf('disconnected', from).map((event) => event.willReconnect)).to.deep.equal([true]);
    // Its record went with the database: it will never be sent, and its promise must not hang.
    const lost = await harness.waitForEvent('operation_error', (event) => event.id === 'in-flight', from);
    expect(lost.message).to.contain('database');
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state).to.include({ lastLSN: '0/0', clientId: resync.frame.clientId, pendingOperations: 0 });

    // Below the old 0/5: a store still holding the old LSN would skip it as a replay.
    await harness.send({ type: 'changes', changes: [update('3', 'three')], lsn: '0/3' });
    await harness.waitForState('lastLSN 0/3', (next) => next.lastLSN === '0/3');
    expect((await harness.entity('todo', '3'))?.data).to.equal('three');
    expect(await harness.entity('todo', '1')).to.equal(undefined);
    expect(await harness.storedLSN()).to.equal('0/3');

    await sleep(150); // a restart loop would dial again on the backoff timer (10-40 ms here), so none can be waited for: outlast it several times
    await harness.barrier();
    expect(harness.connections).to.have.length(2);
    expect(storageErrors(from)).to.have.length(1);
    expect(harness.eventsOf('reconnecting', from)).to.have.length(0);
  });

  it('after a deletion while disconnected, connect() syncs from 0/0 and applies frames without a restart loop', async () => {
    await caughtUp();
    await harness.request({ type: 'disconnect', graceful: false });
    await harness.waitForEvent('disconnected');
    const from = harness.events.length;

    expect(await deleteFromPage(harness.dbName)).to.equal('deleted');
    await harness.waitFor('a storage error', () => storageErrors(from)[0]);
    // Answered once the reopened session is ready, that is after it would have dialled.
    const notConnected = await harness.request({ type: 'sync' }).then(() => 'sent', (error: Error) => error.name);
    expect(notConnected).to.equal('InvalidStateError');
    expect(harness.dials).to.have.length(1); // not wanted: it stays disconnected
    expect(harness.connections).to.have.length(1);

    const { frame, conn } = await harness.connect();
    expect(conn).to.equal(2);
    expect(frame.lastLSN).to.equal('0/0');
    await harness.send({ type: 'changes', changes: [update('9', 'nine')], lsn: '0/2' });
    await harness.waitForState('lastLSN 0/2', (state) => state.lastLSN === '0/2');
    await harness.send({ type: 'operation_complete', id: 'nobody' }, { type: 'changes', changes: [update('9', 'nine!')], lsn: '0/4' });
    await harness.waitForState('lastLSN 0/4', (state) => state.lastLSN === '0/4');
    expect((await harness.entity('todo', '9'))?.data).to.equal('nine!');

    await sleep(150); // a restart loop would dial again on the backoff timer (10-40 ms here), so none can be waited for: outlast it several times
    await harness.barrier();
    expect(harness.connections).to.have.length(2);
    expect(storageErrors(from)).to.have.length(1);
  });

  it('does not block a newer version\'s upgrade, and stops with an error instead of looping when it cannot reopen', async () => {
    await caughtUp();
    const from = harness.events.length;
    const upgraded = await upgradeFromPage(harness.dbName, DB_VERSION + 1); // a newer version of the app
    try {
      const errors = await harness.waitFor('two storage errors', () => {
        const found = storageErrors(from);
        return found.length >= 2 ? found : undefined;
      });
      expect(errors[0]!.message).to.contain('closed');
      expect(errors[1]!.message).to.contain('reopen');
      const state = await harness.request<SyncState>({ type: 'get_status' });
      expect(state).to.include({ status: 'error', isConnected: false });
      const refused = await harness.request({ type: 'connect' }).then(() => 'ok', (error: Error) => error.name);
      expect(refused).to.equal('StorageError');
      await sleep(150); // a retry would come from a timer (a backoff of 10-40 ms here), so none can be waited for: outlast it several times
      expect(harness.connections).to.have.length(1);
      expect(storageErrors(from)).to.have.length(2);
    } finally {
      upgraded.close();
    }
  });
});
