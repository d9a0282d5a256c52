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
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

// One page per test file: this file is the only user of the page's default client.
describe('the module functions of the older SyncClient API, on the default client', () => {
  const server = useReferenceServer({}, { per: 'file' });
  const dbName = uniqueDbName();

  after(async () => {
    await cleanupBackgroundSync();
    await deleteDatabase(dbName);
  });

  it('runs a whole session: initializeSync, connectToSyncServer, getSyncStatus, sendSyncMessage, disconnectFromSyncServer, cleanupBackgroundSync', async () => {
    expect(syncClient.started, 'nothing started before the first call').to.equal(false);
    const lsn = await server.post(notes(2));

    await initializeSync(undefined, { url: server.wsUrl, dbName, backoffInitial: 50 });
    expect(syncClient.started).to.equal(true);
    expect((await server.stats()).clients, 'initializeSync does not connect').to.equal(0);
    expect(syncClient.getState().clientId).to.match(/^[0-9a-f-]{36}$/);

    const completed = record(syncClient, ['sync_completed']);
    // The older app's listeners, moved over without naming a target: they go on syncClient.
    const migrated: string[] = [];
    const removeMigrated = migrateEventListeners({ connected: () => migrated.push('connected'), sync_completed: ({ lsn: at }) => migrated.push(at) });
    await connectToSyncServer();
    await completed.waitFor('sync_completed', (detail) => detail.lsn === lsn);
    expect(migrated).to.deep.equal(['connected', lsn]);
    removeMigrated();
    const status = await getSyncStatus();
    expect(status).to.include({ status: 'connected', isConnected: true, lastLSN: lsn });

    await syncClientLegacy.queueOperation({ id: 'via-legacy', type: 'upsert', data: { entityType: 'note', entityId: 'x', data: {} } });
    expect((await server.entities()).entities.map((entity) => entity.entityId)).to.include('x');

    const before = completed.entries.length;
    await sendSyncMessage();
    await completed.waitFor('sync_completed', () => true, { from: before });

    await disconnectFromSyncServer(true);
    expect((await getSyncStatus()).isConnected).to.equal(false);
    await waitFor(async () => (await server.stats()).clients === 0, 'the socket closed');

    await cleanupBackgroundSync();
    let error: unknown;
    await initializeSync().catch((caught: unknown) => { error = caught; });
    expect(error, 'the default client is finished after cleanup').to.be.instanceOf(SyncError);
  });
});
