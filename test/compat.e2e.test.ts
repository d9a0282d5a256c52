import { expect } from '@open-wc/testing';
import '../src/index.ts';
import { SyncClientCompat } from '../src/client/compat.ts';
import { WorkerSyncService } from '../src/client/sync-service.ts';
import type { SyncOperation } from '../src/client/legacy-types.ts';
import { migrateEventListeners, migrateQueuedOperations, migrateSyncState } from '../src/client/migration.ts';
import type { SyncState } from '../src/protocol/state.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MemoryDatabase } from './helpers/memory-database.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

/** A legacy operation whose callbacks record its outcome. */
function legacy(operation: Omit<SyncOperation, 'resolve' | 'reject'>): SyncOperation & { outcome?: { ok: boolean; value: unknown } } {
  const op: SyncOperation & { outcome?: { ok: boolean; value: unknown } } = {
    ...operation,
    resolve: (value) => { op.outcome = { ok: true, value }; },
    reject: (error) => { op.outcome = { ok: false, value: error }; },
  };
  return op;
}

const upsert = (entityId: string, text = entityId) => ({ type: 'upsert', data: { entityType: 'note', entityId, data: { text } } });

describe('SyncClientCompat and the migration helpers, against the reference server', () => {
  const server = useReferenceServer();
  let dbName: string;
  const clients: { cleanup(): Promise<void> }[] = [];

  function compat(options: { database?: MemoryDatabase } = {}): SyncClientCompat {
    const service = new WorkerSyncService({ url: server.wsUrl, dbName, backoffInitial: 50, backoffMax: 300, ...options });
    const client = new SyncClientCompat(service);
    clients.push(client);
    return client;
  }

  beforeEach(() => {
    dbName = uniqueDbName();
    localStorage.removeItem('sync_client_id');
    localStorage.removeItem('sync_last_lsn');
  });

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.cleanup();
    await deleteDatabase(dbName);
    localStorage.removeItem('sync_client_id');
    localStorage.removeItem('sync_last_lsn');
  });

  it('initialize, connect, getState, the onStateChange setter, disconnect, forceConnect, getNetworkStatus', async () => {
    const client = compat();
    await client.initialize();
    expect(client.getState()).to.include({ isConnected: false, isConnecting: false, reconnectAttempts: 0, lastLSN: '0/0' });
    const first: SyncState[] = [];
    const second: SyncState[] = [];
    client.onStateChange = (state) => first.push(state);
    client.onStateChange = (state) => second.push(state);
    await client.connect();
    await waitFor(() => client.getState().isConnected, 'connected');
    expect(first, 'a replaced listener hears nothing').to.have.length(0);
    expect(second.at(-1)!.isConnected).to.equal(true);
    client.onStateChange = null;
    const heard = second.length;
    await client.disconnect(true);
    expect(client.getState().isConnected).to.equal(false);
    expect(second.length, 'a removed listener hears nothing').to.equal(heard);
    await client.forceConnect();
    await waitFor(() => client.getState().isConnected, 'connected after forceConnect');
    expect(client.getNetworkStatus().online).to.equal(navigator.onLine);
  });

  it('a legacy operation without execute is stored, sent with its data, and settles its resolve', async () => {
    const client = compat();
    await client.connect();
    const op = legacy({ id: 'legacy-1', ...upsert('l1', 'from the old client') });
    const returned = await client.queueOperation(op);
    expect(op.outcome?.ok, String(op.outcome?.value)).to.equal(true);
    expect(returned).to.deep.equal(op.outcome!.value);
    expect((returned as { id: string }).id).to.equal('legacy-1');
    const { entities } = await server.entities();
    expect(entities).to.deep.include({ entityType: 'note', entityId: 'l1', data: { text: 'from the old client' } });
  });

  it('an operation with execute runs on the page only after the operations queued before it are acknowledged', async () => {
    const client = compat();
    await client.connect();
    await waitFor(() => client.getState().isConnected, 'connected');
    await server.stop();
    const before = legacy({ id: 'before', ...upsert('b') });
    void client.queueOperation(before);
    let ranWith: { beforeSettled: boolean } | undefined;
    const fn = legacy({
      id: 'fn',
      type: 'local',
      execute: () => {
        ranWith = { beforeSettled: before.outcome !== undefined };
        return 'executed';
      },
    });
    const result = client.queueOperation(fn);
    await waitFor(() => client.getState().pendingOperations === 1, 'the operation before it stored, unacknowledged');
    await client.service.getStatus(); // a round trip to the worker, after which an early run would show
    expect(ranWith, 'execute waits while the operation before it is unacknowledged').to.equal(undefined);
    await server.startAgain();
    expect(await result).to.equal('executed');
    expect(ranWith).to.deep.equal({ beforeSettled: true });
    expect(before.outcome?.ok).to.equal(true);
    expect(fn.outcome).to.deep.equal({ ok: true, value: 'executed' });
    expect((await server.stats()).operationsApplied, 'the function itself never went to the server').to.equal(1);
  });

  it('a failing execute or an invalid operation calls reject with the reason', async () => {
    const client = compat();
    await client.initialize();
    const failing = legacy({ type: 'local', execute: () => { throw new Error('boom'); } });
    const invalid = legacy({ type: 42 as unknown as string });
    await client.queueOperation(failing).catch(() => undefined);
    await client.queueOperation(invalid).catch(() => undefined);
    expect(failing.outcome?.ok).to.equal(false);
    expect(String(failing.outcome?.value)).to.contain('boom');
    expect(invalid.outcome?.ok).to.equal(false);
    expect(String(invalid.outcome?.value)).to.match(/type/);
  });

  it('migrateQueuedOperations stores the old queue durably with its ids; the server applies each once', async () => {
    const client = compat();
    await client.initialize();
    await server.stop();
    const old = [legacy({ id: 'q1', ...upsert('q1') }), legacy({ id: 'q2', ...upsert('q2') }), legacy({ id: 'q3', type: '' })];
    const migrated = await migrateQueuedOperations(old, client);
    expect(migrated.queued).to.deep.equal(['q1', 'q2']);
    expect(migrated.rejected.map((entry) => entry.id)).to.deep.equal(['q3']);
    expect(old[2]!.outcome?.ok).to.equal(false);
    // Stored: a new client on the same database sends them after this one is gone.
    await client.cleanup();
    await server.startAgain();
    const next = compat();
    await next.connect();
    await waitFor(async () => (await server.stats()).operationsApplied === 2, 'both applied');
    const ids = (await server.entities()).entities.map((entity) => entity.entityId).sort();
    expect(ids).to.deep.equal(['q1', 'q2']);
  });

  it('migrateEventListeners adds a map of listeners to a client or an element and removes them with one call', async () => {
    const client = compat();
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, manual: true });
    document.body.append(element);
    try {
      const heard: string[] = [];
      const offClient = migrateEventListeners({ connected: ({ clientId }) => heard.push(`client ${clientId.length > 0}`) }, client.service);
      const offElement = migrateEventListeners({ connected: ({ clientId }) => heard.push(`element ${clientId.length > 0}`) }, element);
      expect(() => migrateEventListeners({ nope: () => undefined } as never, element)).to.throw(/Unknown sync event "nope"/);
      await client.connect();
      await element.connect();
      await waitFor(() => heard.length === 2, 'both listeners');
      expect(heard.sort()).to.deep.equal(['client true', 'element true']);
      offClient();
      offElement();
      await client.disconnect();
      await element.disconnect();
      await client.connect();
      await element.connect();
      await waitFor(() => client.getState().isConnected && element.hasAttribute('connected'), 'connected again');
      expect(heard, 'removed listeners hear nothing').to.have.length(2);
    } finally {
      element.remove();
    }
  });

  it('a migrated legacy state resumes from its LSN: only the changes after it are sent', async () => {
    await server.post(notes(3, 0));
    const oldLSN = await server.post(notes(2, 3));
    const last = await server.post(notes(2, 5));
    const migrated = await migrateSyncState({ clientId: 'legacy-client', lastLSN: oldLSN }, { dbName, storage: null });
    expect(migrated).to.deep.include({ clientId: 'legacy-client', lastLSN: oldLSN, migrated: ['clientId', 'lastLSN'] });

    // The old client's entities are in the app's database, where the new client keeps writing.
    const database = new MemoryDatabase();
    const client = compat({ database });
    const started = record(client.service, ['sync_started']);
    await client.connect();
    await waitFor(() => client.getState().lastLSN === last, 'caught up');
    expect(client.getState().clientId).to.equal('legacy-client');
    expect(started.of('sync_started').at(-1)?.total, 'the server counted only the changes after the old LSN').to.equal(2);
    expect(database.committed.flat().map((write) => write.entityId)).to.deep.equal(['n5', 'n6']);
  });

  it('migrateSyncState reads the legacy localStorage keys, writes only into a database that has none, and rejects a bad LSN', async () => {
    localStorage.setItem('sync_client_id', 'from-storage');
    localStorage.setItem('sync_last_lsn', '0/1A');
    const first = await migrateSyncState(undefined, { dbName });
    expect(first).to.deep.include({ clientId: 'from-storage', lastLSN: '0/1A', migrated: ['clientId', 'lastLSN'] });
    const again = await migrateSyncState({ clientId: 'other', lastLSN: '0/FF' }, { dbName });
    expect(again).to.deep.include({ clientId: 'from-storage', lastLSN: '0/1A', migrated: [] });
    let error: unknown;
    await migrateSyncState({ lastLSN: 'yesterday' }, { dbName: uniqueDbName() }).catch((caught: unknown) => { error = caught; });
    expect(String(error)).to.contain('"yesterday" is not an LSN');
    localStorage.setItem('sync_last_lsn', 'garbage');
    const other = uniqueDbName();
    const skipped = await migrateSyncState(undefined, { dbName: other });
    expect(skipped.skipped.join()).to.contain('sync_last_lsn');
    expect(skipped.lastLSN).to.equal('0/0');
    await deleteDatabase(other);
  });

  it('the compat layer carries the localStorage id over, and the LSN only into the app\'s own Database; then removes the keys', async () => {
    await server.post(notes(2, 0));
    const oldLSN = await server.post(notes(1, 2));
    localStorage.setItem('sync_client_id', 'stored-old-id');
    localStorage.setItem('sync_last_lsn', oldLSN);
    const builtIn = compat();
    await builtIn.connect();
    await waitFor(async () => (await builtIn.service.getEntities('note')).length === 3, 'the built-in store gets everything');
    expect(builtIn.getState().clientId).to.equal('stored-old-id');
    expect(localStorage.getItem('sync_client_id'), 'carried over, then removed').to.equal(null);
    expect(localStorage.getItem('sync_last_lsn')).to.equal(null);
    await builtIn.cleanup();
    await deleteDatabase(dbName);

    localStorage.setItem('sync_client_id', 'stored-old-id');
    localStorage.setItem('sync_last_lsn', oldLSN);
    dbName = uniqueDbName();
    const database = new MemoryDatabase();
    const own = compat({ database });
    await own.connect();
    const last = await server.post(notes(1, 3));
    await waitFor(() => own.getState().lastLSN === last, 'caught up');
    expect(database.committed.flat().map((write) => write.entityId), 'resumed after the old LSN').to.deep.equal(['n3']);
  });

  it('a built-in store that finds an LSN migrated for a custom Database syncs from 0/0 instead', async () => {
    await server.post(notes(2, 0));
    const oldLSN = await server.post(notes(1, 2));
    await migrateSyncState({ clientId: 'c', lastLSN: oldLSN }, { dbName, storage: null });
    const client = compat();
    await client.connect();
    await waitFor(async () => (await client.service.getEntities('note')).length === 3, 'everything, not only what follows the old LSN');
  });
});
