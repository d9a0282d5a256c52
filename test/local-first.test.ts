import { expect } from '@open-wc/testing';
import '../src/index.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { OperationRejectedError, SyncError } from '../src/protocol/errors.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MemoryDatabase } from './helpers/memory-database.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { nextTask, Observed } from './helpers/observed.ts';
import { waitFor } from './helpers/wait.ts';

const note = (entityId: string, data: unknown) => ({ type: 'update', entityType: 'note', entityId, data });

/**
 * Local-first reads over the real worker engine and a scripted server (mock-socket in the worker),
 * which answers in the orders a server may choose: the acknowledgement before the change or after.
 */
describe('local-first reads with a scripted server', () => {
  let mock: MockWorkers;
  let dbName: string;
  let element: SyncConnectionElement;

  async function mount(): Promise<SyncConnectionElement> {
    element = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    element.createWorker = mock.create;
    document.body.append(element);
    await waitFor(() => element.getAttribute('status') === 'connected', 'status connected');
    return element;
  }

  /** The server's part: the batch, and waiting until the page has heard it. */
  async function commit(lsn: string, ...changes: ReturnType<typeof note>[]): Promise<void> {
    const seen = record(element, ['changes']);
    await mock.send({ type: 'changes', lsn, changes });
    await seen.waitFor('changes', (detail) => detail.lsn === lsn);
  }

  const operationFrames = () => mock.framesOf('operation').map((frame) => (frame.operation as { id: string }).id);

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    element?.remove();
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('shows a write in a read started in the same task, before it is stored, marked pending', async () => {
    await mount();
    const done = element.queueOperation({ type: 'upsert', id: 'w1', payload: { entityType: 'note', entityId: 'n1', data: { text: 'hi' } } });
    const read = element.getEntity('note', 'n1');
    const all = element.getEntities('note');
    expect(await read).to.deep.equal({ entityType: 'note', entityId: 'n1', data: { text: 'hi' }, pending: true });
    expect((await all).map((entity) => entity.entityId)).to.deep.equal(['n1']);
    await waitFor(() => operationFrames().includes('w1'), 'the operation at the server');
    await commit('0/10', note('n1', { text: 'hi' }));
    await mock.send({ type: 'operation_complete', id: 'w1', lsn: '0/10' });
    expect(await done).to.deep.equal({ id: 'w1', lsn: '0/10' });
    await waitFor(async () => (await element.getEntity('note', 'n1'))?.pending === undefined, 'no longer pending');
    expect(await element.getEntity('note', 'n1')).to.deep.equal({ entityType: 'note', entityId: 'n1', data: { text: 'hi' }, lsn: '0/10' });
  });

  it('never shows the old value again when the acknowledgement comes before the change', async () => {
    await mount();
    await commit('0/5', note('n1', { text: 'old' }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the server value', (rows) => rows[0]?.data !== undefined);
    const done = element.queueOperation({ type: 'upsert', id: 'w1', payload: { entityType: 'note', entityId: 'n1', data: { text: 'new' } } });
    await observed.waitFor('the write, pending', (rows) => rows[0]?.pending === true);
    await waitFor(() => operationFrames().includes('w1'), 'the operation at the server');
    const beforeAck = observed.calls.length;
    await mock.send({ type: 'operation_complete', id: 'w1', lsn: '0/10' });
    await done;
    const acknowledged = await observed.waitFor('acknowledged, not yet covered', (rows) => rows[0]?.pending === undefined && rows[0]?.lsn === '0/5', beforeAck);
    expect(acknowledged.rows[0]!.data).to.deep.equal({ text: 'new' });
    expect((await element.getEntity('note', 'n1'))!.data, 'a read between the ack and the change').to.deep.equal({ text: 'new' });
    await commit('0/10', note('n1', { text: 'new' }));
    await observed.waitFor('the server value with the write', (rows) => rows[0]?.lsn === '0/10');
    const values = observed.calls.map((call) => (call.rows[0]?.data as { text: string }).text);
    expect(values.slice(values.indexOf('new')), 'never "old" again').to.not.include('old');
    expect(observed.last!.rows[0]).to.deep.equal({ entityType: 'note', entityId: 'n1', data: { text: 'new' }, lsn: '0/10' });
  });

  it('never shows the old value again when the change comes before the acknowledgement', async () => {
    await mount();
    await commit('0/5', note('n1', { text: 'old' }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the server value', (rows) => rows.length === 1);
    const done = element.queueOperation({ type: 'patch', id: 'w1', payload: { entityType: 'note', entityId: 'n1', data: { text: 'new' } } });
    await waitFor(() => operationFrames().includes('w1'), 'the operation at the server');
    await commit('0/10', note('n1', { text: 'new' }));
    await mock.send({ type: 'operation_complete', id: 'w1', lsn: '0/10' });
    await done;
    await observed.waitFor('settled', (rows) => rows[0]?.pending === undefined && rows[0]?.lsn === '0/10');
    const values = observed.calls.map((call) => (call.rows[0]?.data as { text: string }).text);
    expect(values).to.deep.equal(['old', ...values.slice(1).map(() => 'new')]);
  });

  it('rolls back one refused write between two pending writes to one entity, in every read, and says which entities', async () => {
    await mount();
    await commit('0/5', note('n1', { title: 'a', done: false }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the server value', (rows) => rows.length === 1);
    const seen = record(element, ['operation_error']);
    const patch = (id: string, data: Record<string, unknown>) =>
      element.queueOperation({ type: 'patch', id, payload: { entityType: 'note', entityId: 'n1', data } });
    const first = patch('p1', { title: 'mine' });
    const second = patch('p2', { tags: ['x'] });
    const third = patch('p3', { title: 'mine again', color: 'red' });
    void first.catch(() => undefined);
    void third.catch(() => undefined);
    await observed.waitFor('all three on top', (rows) => (rows[0]?.data as { color?: string }).color === 'red');
    // The server changes `done` meanwhile: it shows under the pending patches.
    await commit('0/6', note('n1', { title: 'a', done: true }));
    expect((await element.getEntity('note', 'n1'))!.data).to.deep.equal({ title: 'mine again', done: true, tags: ['x'], color: 'red' });
    await waitFor(() => operationFrames().length === 3, 'three operations at the server');
    const beforeRefusal = observed.calls.length;
    await mock.send({ type: 'operation_error', id: 'p2', message: 'tags are read-only' });
    const refused = await second.then(() => undefined, (error: unknown) => error);
    expect(refused).to.be.instanceOf(OperationRejectedError);
    expect((await seen.waitFor('operation_error'))).to.deep.equal({ id: 'p2', message: 'tags are read-only', entities: [{ entityType: 'note', entityId: 'n1' }] });
    const after = await observed.waitFor('p2 rolled back', (rows) => !('tags' in (rows[0]?.data as object)), beforeRefusal);
    expect(after.rows[0]).to.deep.equal({ entityType: 'note', entityId: 'n1', data: { title: 'mine again', done: true, color: 'red' }, lsn: '0/6', pending: true });
    expect(after.delta.updated).to.deep.equal([after.rows[0]]);
    expect((await element.getEntity('note', 'n1'))!.data).to.deep.equal({ title: 'mine again', done: true, color: 'red' });
  });

  it('a refused write of a new entity disappears from every read', async () => {
    await mount();
    const observed = new Observed();
    element.observe('note', observed.listener);
    const done = element.queueOperation({ type: 'upsert', id: 'w', payload: { entityType: 'note', entityId: 'ghost', data: {} } });
    await observed.waitFor('it shows', (rows) => rows.length === 1);
    await waitFor(() => operationFrames().includes('w'), 'the operation at the server');
    await mock.send({ type: 'operation_error', id: 'w', message: 'no' });
    await done.catch(() => undefined);
    const gone = await observed.waitFor('it is gone', (rows) => rows.length === 0);
    expect(gone.delta.removed.map((row) => row.entityId)).to.deep.equal(['ghost']);
    expect(await element.getEntity('note', 'ghost')).to.equal(undefined);
    expect(await element.getEntities('note')).to.deep.equal([]);
  });

  it('shows the effects a custom operation declares, and none for one that declares none', async () => {
    await mount();
    await commit('0/5', note('n1', { title: 'a' }));
    const done = element.queueOperation({
      type: 'note.move', id: 'm', payload: { to: 'l1' },
      effects: [{ type: 'patch', entityType: 'note', entityId: 'n1', data: { list: 'l1' } }, { type: 'upsert', entityType: 'list', entityId: 'l1', data: { name: 'groceries' } }],
    });
    void done.catch(() => undefined);
    const plain = element.queueOperation({ type: 'note.archive_all', id: 'a', payload: {} });
    void plain.catch(() => undefined);
    expect((await element.getEntity('note', 'n1'))!.data).to.deep.equal({ title: 'a', list: 'l1' });
    expect(await element.getEntity('list', 'l1')).to.deep.equal({ entityType: 'list', entityId: 'l1', data: { name: 'groceries' }, pending: true });
    await waitFor(() => operationFrames().length === 2, 'both at the server');
    expect(mock.framesOf('operation')[0]!.operation, 'effects stay on the client').to.deep.equal({ id: 'm', type: 'note.move', payload: { to: 'l1' } });
  });

  it('removes the effects of cleared operations from every read', async () => {
    await mount();
    await commit('0/5', note('n1', { title: 'a' }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    const writes = [
      element.queueOperation({ type: 'patch', id: 'c1', payload: { entityType: 'note', entityId: 'n1', data: { title: 'b' } } }),
      element.queueOperation({ type: 'upsert', id: 'c2', payload: { entityType: 'note', entityId: 'n2', data: {} } }),
    ];
    for (const write of writes) void write.catch(() => undefined);
    await observed.waitFor('both shown', (rows) => rows.length === 2 && rows[0]?.pending === true);
    expect(await element.clearOperationQueue()).to.equal(2);
    const cleared = await observed.waitFor('both gone', (rows) => rows.length === 1 && rows[0]?.pending === undefined);
    expect(cleared.rows[0]!.data).to.deep.equal({ title: 'a' });
  });

  it('on reset: discards the server\'s entities, keeps the pending writes on top, and syncs from 0/0', async () => {
    await mount();
    await commit('0/50', note('n1', { v: 1 }), note('n2', { v: 2 }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('two rows', (rows) => rows.length === 2);
    const write = element.queueOperation({ type: 'patch', id: 'keep', payload: { entityType: 'note', entityId: 'n2', data: { mine: true } } });
    void write.catch(() => undefined);
    await observed.waitFor('the write', (rows) => rows[1]?.pending === true);
    const seen = record(element, ['sync_reset']);
    const syncs = mock.framesOf('sync').length;
    await mock.send({ type: 'reset', reason: 'restored from a backup' });
    expect(await seen.waitFor('sync_reset')).to.deep.equal({ reason: 'restored from a backup' });
    const reset = await observed.waitFor('only the pending write left', (rows) => rows.length === 1);
    expect(reset.rows[0]).to.deep.equal({ entityType: 'note', entityId: 'n2', data: { mine: true }, pending: true });
    expect(reset.delta.removed.map((row) => row.entityId)).to.deep.equal(['n1']);
    await waitFor(() => mock.framesOf('sync').length > syncs, 'a new sync');
    expect(mock.framesOf('sync').at(-1)!.lastLSN).to.equal('0/0');
    expect(element.getAttribute('last-lsn')).to.equal('0/0');
    await commit('0/2', note('n2', { v: 'new log' }));
    await observed.waitFor('the new log under the write', (rows) => rows.length === 1 && (rows[0]?.data as { v?: string }).v === 'new log');
    expect(observed.last!.rows[0]!.data).to.deep.equal({ v: 'new log', mine: true });
  });

  it('calls nothing for a change to another entity type', async () => {
    await mount();
    await commit('0/5', note('n1', {}));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the first result', () => true);
    await commit('0/6', { type: 'update', entityType: 'list', entityId: 'l1', data: {} } as never);
    await nextTask();
    expect(observed.calls).to.have.length(1);
  });

  it('refuses bad input at the call and stores nothing', async () => {
    await mount();
    const refusal = async (attempt: () => unknown): Promise<unknown> => {
      try {
        return await attempt();
      } catch (error) {
        return error;
      }
    };
    const badPatch = await refusal(() => element.queueOperation({ type: 'patch', payload: { entityType: 'note', entityId: 'n', data: 'done' } }));
    expect(badPatch).to.be.instanceOf(SyncError);
    expect((badPatch as SyncError).message).to.contain('merge patch');
    const noEntity = await refusal(() => element.queueOperation({ type: 'note.move', payload: {}, effects: [{ type: 'delete', entityType: 'note' } as never] }));
    expect((noEntity as SyncError).message).to.contain('entityId');
    expect(() => element.observe('note', undefined as never)).to.throw(TypeError, /listener must be a function/);
    expect(() => element.observe('', () => undefined)).to.throw(TypeError, /entityType/);
    expect(() => element.observe('note', () => undefined, { limit: -1 })).to.throw(TypeError, /limit/);
    expect(await element.getEntities('note')).to.deep.equal([]);
    expect(element.getAttribute('pending')).to.equal('0');
  });

  it('reports a listener that throws as an observer error, and the other listeners and the sync go on', async () => {
    await mount();
    const errors = record(element, ['error']);
    element.observe('note', () => { throw new Error('a bug in the app'); });
    const observed = new Observed();
    element.observe('note', observed.listener);
    await commit('0/5', note('n1', {}));
    await observed.waitFor('the change', (rows) => rows.length === 1);
    const error = await errors.waitFor('error', (detail) => detail.code === 'observer');
    expect(error.message).to.equal('a bug in the app');
    await commit('0/6', note('n2', {}));
    await observed.waitFor('the next change', (rows) => rows.length === 2);
    expect(element.getAttribute('status')).to.equal('connected');
  });

  it('empties an app\'s own Database with its reset() on a server reset, before the new log\'s batches', async () => {
    const database = new (class extends MemoryDatabase {
      resets = 0;
      async reset(): Promise<void> {
        await new Promise((resolve) => setTimeout(resolve, 20)); // an app's store takes a moment
        this.entities.clear();
        this.resets += 1;
      }
    })();
    element = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    element.createWorker = mock.create;
    element.database = database;
    document.body.append(element);
    await waitFor(() => element.getAttribute('status') === 'connected', 'status connected');
    await commit('0/50', note('old-1', {}), note('old-2', {}));
    await waitFor(() => database.entities.size === 2, 'the old log applied');
    await mock.send({ type: 'reset', reason: 'restored' }, { type: 'changes', lsn: '0/2', changes: [note('new-1', {})] });
    await waitFor(() => element.getAttribute('last-lsn') === '0/2', 'the new log applied');
    expect(database.resets).to.equal(1);
    expect([...database.entities.keys()]).to.deep.equal(['note/new-1']);
  });
});
