import { expect } from '@open-wc/testing';
import '../src/index.ts';
import { SyncError } from '../src/protocol/errors.ts';
import { WorkerSyncService } from '../src/client/sync-service.ts';
import { openSyncDB } from '../src/db/schema.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { compareLSN } from '../src/protocol/lsn.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MemoryDatabase } from './helpers/memory-database.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

const FAST = { backoffInitial: 50, backoffMax: 300 };

/** The resume point as the worker stored it in IndexedDB. */
async function storedLSN(dbName: string): Promise<unknown> {
  const db = await openSyncDB(dbName);
  try {
    return await db.get('meta', 'lastLSN');
  } finally {
    db.close();
  }
}

const sameLSN = (a: string, b: string) => compareLSN(a, b) === 0;

describe('a custom Database', () => {
  const server = useReferenceServer({ batchSize: 2 });
  let dbName: string;
  const services: WorkerSyncService[] = [];

  function client(database: MemoryDatabase): WorkerSyncService {
    const service = new WorkerSyncService({ url: server.wsUrl, dbName, ...FAST, database });
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

  it('receives each batch in one transaction of its own, in order, and the LSN moves with each commit', async () => {
    await server.post(notes(2, 0));
    await server.post(notes(2, 2));
    const last = await server.post([{ type: 'delete', entityType: 'note', entityId: 'n0' }]);
    const database = new MemoryDatabase();
    const service = client(database);
    const events = record(service, ['changes', 'sync_completed']);
    await service.connect();
    const { lsn: completed } = await events.waitFor('sync_completed');
    const batches = events.of('changes');

    expect(sameLSN(completed, last), `${completed} is the server's ${last}`).to.equal(true);
    expect(batches.length, 'more than one batch (frames of 2 changes)').to.be.greaterThan(1);
    expect(database.committed.map((writes) => writes.map((w) => `${w.op} ${w.entityId}`)))
      .to.deep.equal(batches.map(({ changes }) => changes.map((c) => `${c.type === 'update' ? 'upsert' : 'delete'} ${c.entityId}`)));
    expect([...database.entities.keys()].sort()).to.deep.equal(['note/n1', 'note/n2', 'note/n3']);
    expect(database.get('note', 'n2')).to.deep.equal({ text: 'note 2' });
    expect(database.committed.flat().every((w) => typeof w.timestamp === 'number'), 'every write has a timestamp').to.equal(true);
    expect(sameLSN(String(await storedLSN(dbName)), last), 'the stored resume point').to.equal(true);

    // Live changes after the catch-up arrive the same way.
    const live = await server.post(notes(1, 9));
    await waitFor(() => database.get('note', 'n9') !== undefined, 'the live change in the database');
    await waitFor(() => sameLSN(service.getState().lastLSN, live), 'the LSN of the live change');
  });

  it('keeps its entities out of the built-in store and says where to read them', async () => {
    await server.post(notes(1));
    const database = new MemoryDatabase();
    const service = client(database);
    const events = record(service, ['sync_completed']);
    await service.connect();
    await events.waitFor('sync_completed');
    let error: unknown;
    await service.getEntity('note', 'n0').catch((caught: unknown) => { error = caught; });
    expect(error).to.be.instanceOf(SyncError);
    expect((error as SyncError).code).to.equal('storage');
    expect((error as SyncError).message).to.contain('your own Database');
  });

  it('a failing transaction leaves the LSN before its batch, reports storage, and the batch comes again until it commits', async () => {
    // Frames of at most 2 changes: [n0 n1] [n2 n3] [n4], one record each.
    const first = await server.post(notes(2, 0));
    await server.post(notes(2, 2));
    const last = await server.post(notes(1, 4));
    const database = new MemoryDatabase();
    let refuse = true;
    database.failWhen = (writes) => (refuse && writes.some((w) => w.entityId === 'n2') ? 'disk full' : undefined);
    const service = client(database);
    const errors = record(service, ['error']);
    await service.connect();

    await waitFor(() => database.failed.length >= 2, 'the refused batch offered again after a reconnect');
    const storage = errors.of('error').find((e) => e.code === 'storage');
    expect(storage, 'a storage error').to.not.equal(undefined);
    expect(storage!.message).to.contain('disk full');
    expect(sameLSN(service.getState().lastLSN, first), `state LSN ${service.getState().lastLSN} stays at ${first}`).to.equal(true);
    expect(sameLSN(String(await storedLSN(dbName)), first), 'stored LSN stays at the last committed batch').to.equal(true);
    expect(database.get('note', 'n4'), 'nothing after the refused batch is applied').to.equal(undefined);

    refuse = false;
    await waitFor(() => sameLSN(service.getState().lastLSN, last), 'the LSN reaching the server\'s once the database accepts');
    expect([...database.entities.keys()].sort()).to.deep.equal(['note/n0', 'note/n1', 'note/n2', 'note/n3', 'note/n4']);
    const n0Commits = database.committed.flat().filter((w) => w.entityId === 'n0').length;
    expect(n0Commits, 'the batch committed before the failure is not applied again').to.equal(1);
  });

  it('is set on <sync-connection> through its database property', async () => {
    await server.post(notes(2));
    const database = new MemoryDatabase();
    const element: SyncConnectionElement = createSyncElement({ url: server.wsUrl, 'db-name': dbName, 'backoff-initial': '50' });
    element.database = database;
    document.body.append(element);
    try {
      await waitFor(() => database.get('note', 'n1') !== undefined, 'the changes in the element\'s database');
      expect(database.get('note', 'n0')).to.deep.equal({ text: 'note 0' });
    } finally {
      element.remove();
    }
  });

  it('a database switched from the built-in store to a custom one gets everything, not only what follows the built-in LSN', async () => {
    await server.post(notes(3));
    const element: SyncConnectionElement = createSyncElement({ url: server.wsUrl, 'db-name': dbName, 'backoff-initial': '50' });
    document.body.append(element);
    try {
      await waitFor(async () => (await element.getEntities('note').catch(() => [])).length === 3, 'caught up in the built-in store');
      // The app sets its database only now (after an await, as apps do): the client restarts.
      const database = new MemoryDatabase();
      element.database = database;
      await waitFor(() => database.entities.size === 3, 'every entity in the custom database');
      expect(database.get('note', 'n0')).to.deep.equal({ text: 'note 0' });
    } finally {
      element.remove();
    }
  });

  it('initialize(db) twice at once with the same database starts once; another database after the start is refused', async () => {
    await server.post(notes(1));
    const database = new MemoryDatabase();
    const service = new WorkerSyncService({ url: server.wsUrl, dbName, ...FAST });
    services.push(service);
    await Promise.all([service.initialize(database), service.initialize(database)]);
    let refused: unknown;
    await service.initialize(new MemoryDatabase()).catch((error: unknown) => { refused = error; });
    expect(String(refused)).to.contain('already started with another database');
    await service.connect();
    await waitFor(() => database.get('note', 'n0') !== undefined, 'the change in the database given to initialize');
  });
});
