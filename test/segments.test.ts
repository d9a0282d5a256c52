import { expect } from '@open-wc/testing';
import '../src/index.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { storedEntity } from '../src/db/records.ts';
import { openSyncDB } from '../src/db/schema.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { Observed } from './helpers/observed.ts';
import { waitFor } from './helpers/wait.ts';
import { WorkerHarness } from './worker/harness.ts';

const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40 };
const note = (entityId: string, data: unknown) => ({ type: 'update' as const, entityType: 'note', entityId, data });
const many = (count: number, from = 0, text = 'v1') => Array.from({ length: count }, (_, i) => note(`n${from + i}`, { text, i }));

/** What the database holds, read directly: folded entities, the segments not folded yet, the fold mark. */
async function stored(dbName: string) {
  const db = await openSyncDB(dbName);
  try {
    const tx = db.transaction(['entities', 'segments', 'meta'], 'readonly');
    const [entities, segments, foldedThrough] = await Promise.all([
      tx.objectStore('entities').getAll(),
      tx.objectStore('segments').getAll(),
      tx.objectStore('meta').get('foldedThrough'),
      tx.done,
    ]);
    return { entities, segments, foldedThrough };
  } finally {
    db.close();
  }
}

describe('the store: commits as segments, folded into entities when idle', () => {
  let harness: WorkerHarness | undefined;

  afterEach(async () => {
    await harness?.stop();
    harness = undefined;
  });

  it('keeps a commit of thousands of changes as one segment, then folds it into one record per entity, the last change winning', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.mock({ mock: 'fail_folds', on: true }); // see the commit before any fold
    await harness.send({ type: 'changes', lsn: '0/10', changes: [...many(3_000), note('n0', { text: 'v2' }), { type: 'delete', entityType: 'note', entityId: 'n1' }] });
    await harness.waitForEvent('changes');
    const before = await stored(harness.dbName);
    expect(before.segments, 'one record for the whole commit').to.have.length(1);
    expect(before.entities).to.have.length(0);
    expect(await harness.entity('note', 'n0'), 'the last change to it').to.deep.include({ data: { text: 'v2' } });
    await harness.mock({ mock: 'fail_folds', on: false });
    await harness.send({ type: 'changes', lsn: '0/11', changes: [note('n3000', { text: 'v1' })] });
    await harness.waitFor('both commits folded', () => harness!.eventsOf('folded').find((event) => event.through >= 2));
    const after = await stored(harness.dbName);
    expect(after.segments).to.have.length(0);
    expect(after.entities).to.have.length(3_000); // 3,001 written, n1 deleted
    expect(after.foldedThrough).to.equal(harness.eventsOf('folded').at(-1)!.through);
    const n0 = after.entities.find((entity) => entity.entityId === 'n0');
    expect(n0).to.deep.equal(storedEntity(note('n0', { text: 'v2' }), '0/10'));
    expect(after.entities.some((entity) => entity.entityId === 'n1')).to.equal(false);
  });

  it('reports a fold IndexedDB refuses, loses nothing, and folds at the next idle moment', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.mock({ mock: 'fail_folds', on: true });
    await harness.send({ type: 'changes', lsn: '0/10', changes: many(50) });
    const error = await harness.waitForEvent('error', (event) => event.code === 'storage');
    expect(error.message).to.contain('fold');
    expect((await stored(harness.dbName)).segments).to.have.length(1);
    expect(await harness.entity('note', 'n49')).to.deep.include({ data: { text: 'v1', i: 49 } });
    await harness.mock({ mock: 'fail_folds', on: false });
    await harness.send({ type: 'changes', lsn: '0/11', changes: many(1, 50) });
    await harness.waitForEvent('folded', (event) => event.through >= 2);
    expect((await stored(harness.dbName)).entities).to.have.length(51);
    expect(harness.eventsOf('disconnected'), 'the connection stays up').to.have.length(0);
  });

  it('leaves the segments a worker did not fold to the next worker, which folds them', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.mock({ mock: 'fail_folds', on: true });
    await harness.send({ type: 'changes', lsn: '0/10', changes: many(20) });
    await harness.waitForEvent('changes');
    const { dbName } = harness;
    await harness.stop({ keepDatabase: true });
    harness = await WorkerHarness.start({ config: FAST, dbName });
    await harness.waitForEvent('folded');
    const after = await stored(dbName);
    expect([after.entities.length, after.segments.length]).to.deep.equal([20, 0]);
    expect(await harness.storedLSN()).to.equal('0/10');
  });

  it('empties the segments and the entities on a reset', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.send({ type: 'changes', lsn: '0/10', changes: many(5) });
    await harness.waitForEvent('folded');
    await harness.mock({ mock: 'fail_folds', on: true });
    await harness.send({ type: 'changes', lsn: '0/11', changes: many(5, 5) });
    await harness.waitForEvent('changes', (event) => event.lsn === '0/11');
    await harness.send({ type: 'reset' });
    await harness.waitForEvent('sync_reset');
    const after = await stored(harness.dbName);
    expect([after.entities.length, after.segments.length]).to.deep.equal([0, 0]);
  });
});

describe('a page reads the commits not folded yet', () => {
  let mock: MockWorkers;
  let dbName: string;
  const elements: SyncConnectionElement[] = [];

  async function mount(): Promise<SyncConnectionElement> {
    const element = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    element.createWorker = mock.create;
    document.body.append(element);
    elements.push(element);
    await waitFor(() => element.getAttribute('status') === 'connected' || element.getAttribute('role') === 'follower', 'started');
    return element;
  }

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const element of elements.splice(0)) element.remove();
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('reads the same before and after the fold, in this page and in one that starts before it', async () => {
    const element = await mount();
    await waitFor(() => element.getAttribute('status') === 'connected', 'connected');
    await mock.command({ mock: 'fail_folds', on: true });
    const seen = record(element, ['changes', 'error']);
    await mock.send({ type: 'changes', lsn: '0/10', changes: [...many(100), { type: 'delete', entityType: 'note', entityId: 'n5' }] });
    await seen.waitFor('changes');
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the commit', (rows) => rows.length === 99);
    const before = await element.getEntities('note');
    expect(before.map((entity) => entity.entityId)).to.deep.equal(observed.ids());
    expect(await element.getEntity('note', 'n5')).to.equal(undefined);
    expect(await element.getEntity('note', 'n7')).to.deep.equal(storedEntity(note('n7', { text: 'v1', i: 7 }), '0/10'));
    // Another tab starts while the commit is still a segment.
    const later = await mount();
    expect((await later.getEntities('note')).map((entity) => entity.entityId)).to.deep.equal(before.map((entity) => entity.entityId));
    await mock.command({ mock: 'fail_folds', on: false });
    await mock.send({ type: 'changes', lsn: '0/11', changes: [note('n0', { text: 'v2' })] });
    await waitFor(async () => (await stored(dbName)).segments.length === 0, 'folded');
    expect(await element.getEntities('note')).to.have.length(99);
    expect((await element.getEntity('note', 'n0'))?.data).to.deep.equal({ text: 'v2' });
    expect((await later.getEntity('note', 'n0'))?.data).to.deep.equal({ text: 'v2' });
    expect(await element.getEntity('note', 'n5')).to.equal(undefined);
  });

  it('opens a database the previous version wrote (version 1), with its entities, resume point and queued operations', async () => {
    await new Promise<void>((resolve, reject) => {
      const request = indexedDB.open(dbName, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore('entities', { keyPath: ['entityType', 'entityId'] }).createIndex('byType', 'entityType');
        db.createObjectStore('meta');
        db.createObjectStore('outbox', { keyPath: 'id' });
      };
      request.onsuccess = () => {
        const db = request.result;
        const tx = db.transaction(['entities', 'meta', 'outbox'], 'readwrite');
        tx.objectStore('entities').put({ entityType: 'note', entityId: 'old', data: { kept: true }, lsn: '0/5' });
        tx.objectStore('meta').put('0/5', 'lastLSN');
        tx.objectStore('outbox').put({ id: 'queued', type: 'upsert', payload: { entityType: 'note', entityId: 'mine', data: {} }, priority: 0, seq: 1, queuedAt: 1 });
        tx.oncomplete = () => { db.close(); resolve(); };
        tx.onerror = () => reject(tx.error);
      };
      request.onerror = () => reject(request.error);
    });
    const element = await mount();
    await waitFor(() => mock.framesOf('sync').length > 0, 'its sync');
    expect(mock.framesOf('sync')[0]!.lastLSN).to.equal('0/5');
    await waitFor(() => mock.framesOf('operation').length > 0, 'the queued operation sent');
    expect((await element.getEntity('note', 'old'))?.data).to.deep.equal({ kept: true });
    expect(await element.getEntity('note', 'mine')).to.deep.include({ pending: true });
  });
});
