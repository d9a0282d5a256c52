import { expect } from '@open-wc/testing';
import {
  migrateEventListeners,
  cleanupBackgroundSync,
  connectToSyncServer,
  disconnectFromSyncServer,
  getSyncStatus,
  initializeSync,
  sendSyncMessage,
  syncClient,
  syncClientLegacy,
} from '../src/compat.ts';
import { SyncError } from '../src/protocol/errors.ts';
import {
  deleteDatabase,
  notes,
  postChanges,
  serverEntities,
  serverStats,
  startServer,
  stopServer,
  uniqueDbName,
  waitFor,
  type TestServer,
} from './helpers/e2e.ts';

// One page per test file: this file is the only user of the page's default client.
describe('the seeds\' module functions on the default client', () => {
  let server: TestServer;
  const dbName = uniqueDbName();

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await cleanupBackgroundSync();
    await stopServer(server, 'SIGKILL').catch(() => undefined);
    await deleteDatabase(dbName);
  });

  it('runs a whole session: initializeSync, connectToSyncServer, getSyncStatus, sendSyncMessage, disconnectFromSyncServer, cleanupBackgroundSync', async () => {
    expect(syncClient.started, 'nothing started before the first call').to.equal(false);
    const lsn = await postChanges(server, notes(2));

    await initializeSync(undefined, { url: server.wsUrl, dbName, backoffInitial: 50 });
    expect(syncClient.started).to.equal(true);
    expect((await serverStats(server)).clients, 'initializeSync does not connect').to.equal(0);
    expect(syncClient.getState().clientId).to.match(/^[0-9a-f-]{36}$/);

    const completed: string[] = [];
    syncClient.addEventListener('sync_completed', ({ lsn: at }) => completed.push(at));
    // The older app's listeners, moved over without naming a target: they go on syncClient.
    const migrated: string[] = [];
    const removeMigrated = migrateEventListeners({ connected: () => migrated.push('connected'), sync_completed: ({ lsn: at }) => migrated.push(at) });
    await connectToSyncServer();
    await waitFor(() => completed.includes(lsn), 'the catch-up');
    expect(migrated).to.deep.equal(['connected', lsn]);
    removeMigrated();
    const status = await getSyncStatus();
    expect(status).to.include({ status: 'connected', isConnected: true, lastLSN: lsn });

    await syncClientLegacy.queueOperation({ id: 'via-legacy', type: 'upsert', data: { entityType: 'note', entityId: 'x', data: {} } });
    expect((await serverEntities(server)).entities.map((entity) => entity.entityId)).to.include('x');

    const before = completed.length;
    await sendSyncMessage();
    await waitFor(() => completed.length > before, 'a catch-up after sendSyncMessage');

    await disconnectFromSyncServer(true);
    expect((await getSyncStatus()).isConnected).to.equal(false);
    await waitFor(async () => (await serverStats(server)).clients === 0, 'the socket closed');

    await cleanupBackgroundSync();
    let error: unknown;
    await initializeSync().catch((caught: unknown) => { error = caught; });
    expect(error, 'the default client is finished after cleanup').to.be.instanceOf(SyncError);
  });
});
