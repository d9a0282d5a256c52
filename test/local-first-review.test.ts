import { expect } from '@open-wc/testing';
import '../src/index.ts';
import { LiveQueries } from '../src/client/live-queries.ts';
import { PendingLayer, type SyncEntity } from '../src/client/pending-layer.ts';
import { removeFromGroups } from '../src/db/outbox-groups.ts';
import { openSyncDB, type StoredEntity } from '../src/db/schema.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { SyncError } from '../src/protocol/errors.ts';
import { tabsName } from '../src/protocol/tab-messages.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { nextTask, Observed } from './helpers/observed.ts';
import { waitFor } from './helpers/wait.ts';

const note = (entityId: string, data: unknown) => ({ type: 'update', entityType: 'note', entityId, data });
const upsert = (id: string, entityId: string, data: unknown, priority?: number) =>
  ({ type: 'upsert', id, payload: { entityType: 'note', entityId, data }, ...(priority === undefined ? {} : { priority }) });

/**
 * A second read of local-first reads (issue #12): sequences in which a reader sees a value that is
 * not the server's state with the pending writes on top. Each test says the sequence it replays.
 * Real worker engine, scripted server (mock-socket in the worker).
 */
describe('local-first reads, adversarial sequences', () => {
  let mock: MockWorkers;
  let dbName: string;
  const elements: SyncConnectionElement[] = [];

  async function mount(): Promise<SyncConnectionElement> {
    const element = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    element.createWorker = mock.create;
    document.body.append(element);
    elements.push(element);
    await waitFor(() => element.getAttribute('status') === 'connected', 'status connected');
    return element;
  }

  /** The server's part: the batch, and waiting until the page has heard it. */
  async function commit(element: SyncConnectionElement, lsn: string, ...changes: ReturnType<typeof note>[]): Promise<void> {
    const seen = record(element, ['changes']);
    await mock.send({ type: 'changes', lsn, changes });
    await seen.waitFor('changes', (detail) => detail.lsn === lsn);
  }

  const operationFrames = () => mock.framesOf('operation').map((frame) => (frame.operation as { id: string }).id);
  const syncsFrom = (lsn: string) => mock.framesOf('sync').filter((frame) => frame.lastLSN === lsn).length;

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const element of elements.splice(0)) element.remove();
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('a live query forgets the entities of a database deleted under the page (an app\'s logout), as getEntities does', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', { owner: 'alice' }), note('n2', { owner: 'alice' }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('alice\'s notes', (rows) => rows.length === 2);
    const fresh = syncsFrom('0/0');
    // The app logs alice out by deleting the database; the worker reopens it empty and syncs from 0/0.
    await deleteDatabase(dbName);
    await waitFor(() => syncsFrom('0/0') > fresh, 'a sync from 0/0 on the new database');
    await commit(element, '0/3', note('n3', { owner: 'bob' }));
    await observed.waitFor('bob\'s note', (rows) => rows.some((row) => row.entityId === 'n3'));
    expect((await element.getEntities('note')).map((row) => row.entityId), 'what the store holds').to.deep.equal(['n3']);
    expect(observed.ids(), 'what the live query shows').to.deep.equal(['n3']);
  });

  it('an acknowledged write whose change had not arrived when the database was deleted leaves the reads once the new store has the server\'s value', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', { v: 'server' }));
    const done = element.queueOperation(upsert('w1', 'n1', { v: 'mine' }));
    await waitFor(() => operationFrames().includes('w1'), 'the operation at the server');
    // The server acknowledges before it sends the change (protocol 1.1 allows either order).
    await mock.send({ type: 'operation_complete', id: 'w1', lsn: '0/10' });
    await done;
    const fresh = syncsFrom('0/0');
    await deleteDatabase(dbName);
    await waitFor(() => syncsFrom('0/0') > fresh, 'a sync from 0/0 on the new database');
    // The catch-up from 0/0: the write at 0/10, then another client's change at 0/20.
    await commit(element, '0/20', note('n1', { v: 'mine' }), note('n1', { v: 'someone else' }));
    expect((await element.getEntity('note', 'n1'))?.data, 'the server\'s value, nothing on top').to.deep.equal({ v: 'someone else' });
  });

  it('a write shows at once even when an acknowledged, not yet covered write to the same entity has a lower priority', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', { v: 'server' }));
    const first = element.queueOperation(upsert('a', 'n1', { v: 'a' }));
    await waitFor(() => operationFrames().includes('a'), 'the first operation at the server');
    await mock.send({ type: 'operation_complete', id: 'a', lsn: '0/10' });
    await first;
    // Sent after `a` was applied, so the server ends with 'b', whatever its priority.
    const second = element.queueOperation(upsert('b', 'n1', { v: 'b' }, 5));
    void second.catch(() => undefined);
    expect((await element.getEntity('note', 'n1'))?.data, 'the later write on top').to.deep.equal({ v: 'b' });
  });

  it('a write queued again with the id of one stored by an earlier page is refused, and the stored one keeps showing', async () => {
    const earlier = await mount();
    const stored = earlier.queueOperation(upsert('w1', 'n1', { v: 'first' }));
    void stored.catch(() => undefined);
    await waitFor(() => operationFrames().includes('w1'), 'the operation at the server');
    earlier.remove(); // a reload: the operation stays in the outbox, unanswered
    const element = await mount();
    // The reloaded page starts a live query and, in the same task, queues its write again with the same id.
    const observed = new Observed();
    element.observe('note', observed.listener);
    const again = await element.queueOperation(upsert('w1', 'n1', { v: 'second' })).then(() => undefined, (error: unknown) => error);
    expect(String(again)).to.contain('already queued');
    expect(await element.getEntity('note', 'n1'), 'the stored operation, pending').to.deep.include({ data: { v: 'first' }, pending: true });
    await observed.waitFor('the stored operation', (rows) => (rows[0]?.data as { v?: string } | undefined)?.v === 'first');
  });

  it('stores and sends an operation as it was when queueOperation was called', async () => {
    const element = await mount();
    const draft = { text: 'as queued' };
    const done = element.queueOperation({ type: 'upsert', id: 'd1', payload: { entityType: 'note', entityId: 'n1', data: draft } });
    void done.catch(() => undefined);
    draft.text = 'edited in the same task'; // a form that reuses its state object
    await waitFor(() => operationFrames().includes('d1'), 'the operation at the server');
    const sent = mock.framesOf('operation')[0]!.operation as { payload: { data: unknown } };
    expect(sent.payload.data, 'what was sent').to.deep.equal({ text: 'as queued' });
  });

  it('shows the operation that was sent, not what the page did to its object afterwards', async () => {
    const element = await mount();
    const draft = { text: 'sent' };
    const done = element.queueOperation({ type: 'upsert', id: 'd1', payload: { entityType: 'note', entityId: 'n1', data: draft } });
    void done.catch(() => undefined);
    await waitFor(() => operationFrames().includes('d1'), 'the operation at the server');
    draft.text = 'edited once sent';
    const sent = mock.framesOf('operation')[0]!.operation as { payload: { data: unknown } };
    expect(sent.payload.data).to.deep.equal({ text: 'sent' });
    expect((await element.getEntity('note', 'n1'))?.data, 'what the server will store').to.deep.equal({ text: 'sent' });
  });

  it('an announcement of another tab\'s write that arrives after the write left the outbox does not leave it pending for good', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', {}));
    const channel = new BroadcastChannel(tabsName(dbName, element.getState().clientId));
    try {
      // What another tab posts once it has stored an operation. This one is no longer in the outbox:
      // it was sent, applied and settled before its announcement reached this tab (the tabs' channel
      // and the worker's events are not ordered with each other), or a clear removed it.
      channel.postMessage({
        kind: 'operations',
        operations: [{ id: 'gone', type: 'upsert', payload: { entityType: 'note', entityId: 'n9', data: { late: true } }, priority: 0, seq: 1, queuedAt: 1 }],
      });
      // Messages from one sender arrive in order: the answer to this hello comes after the announcement was heard.
      const answered = new Promise<void>((resolve) => {
        channel.onmessage = (event: MessageEvent) => { if ((event.data as { kind?: string }).kind === 'event') resolve(); };
      });
      channel.postMessage({ kind: 'hello' });
      await answered;
      expect(await element.getEntity('note', 'n9'), 'nothing of an operation the outbox does not hold').to.equal(undefined);
      expect(element.getAttribute('pending')).to.equal('0');
    } finally {
      channel.close();
    }
  });

  it('a token refresh calls no observer for rows that did not change, keeps their identity, and the next sync carries it', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', { v: 1 }), note('n2', { v: 2 }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    const first = await observed.waitFor('the first result', (rows) => rows.length === 2);
    const syncs = mock.framesOf('sync').length;
    element.token = 'refreshed'; // an app renews its access token every hour
    // The open connection stays; the next one syncs with the new token. The server drops the
    // connection until a sync carries it (the token reaches the worker a few messages later).
    const synced = () => mock.framesOf('sync').slice(syncs).some((frame) => frame.token === 'refreshed');
    await waitFor(async () => {
      if (synced()) return true;
      await waitFor(() => element.getAttribute('status') === 'connected', 'connected');
      await mock.command({ mock: 'close', code: 1001, reason: 'going away' });
      return false;
    }, 'a sync with the new token');
    await waitFor(() => element.getAttribute('status') === 'connected', 'connected again');
    await commit(element, '0/6', note('n2', { v: 'changed' }));
    const changed = await observed.waitFor('the change to n2', (rows) => (rows[1]?.data as { v: unknown }).v === 'changed');
    expect(changed.rows[0], 'n1 did not change: the same object').to.equal(first.rows[0]);
    const calls = observed.calls.slice(1).map((call) => ({
      added: call.delta.added.map((row) => row.entityId),
      updated: call.delta.updated.map((row) => row.entityId),
      removed: call.delta.removed.map((row) => row.entityId),
    }));
    expect(calls, 'one call, for the one change').to.deep.equal([{ added: [], updated: ['n2'], removed: [] }]);
  });

  it('clearing the queue keeps an acknowledged write on top until its change arrives, and does not count it as dropped', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', { v: 'old' }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the server value', (rows) => rows.length === 1);
    const done = element.queueOperation(upsert('w1', 'n1', { v: 'new' }));
    await waitFor(() => operationFrames().includes('w1'), 'the operation at the server');
    await mock.send({ type: 'operation_complete', id: 'w1', lsn: '0/10' });
    await done; // applied at the server: its change is on its way
    const dropped = await element.clearOperationQueue();
    expect(await element.getEntity('note', 'n1'), 'the acknowledged write, not the value from before it').to.deep.include({ data: { v: 'new' } });
    await commit(element, '0/10', note('n1', { v: 'new' }));
    const values = observed.calls.map((call) => (call.rows[0]?.data as { v: string }).v);
    expect(values.slice(values.indexOf('new')), 'never "old" again').to.not.include('old');
    expect(dropped, 'an acknowledged operation is not dropped by a clear').to.equal(0);
  });

  it('a write queued in a follower whose element is removed while the write is being stored is sent by the leader', async () => {
    await mount();
    const follower = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    follower.createWorker = mock.create;
    document.body.append(follower);
    elements.push(follower);
    await waitFor(() => follower.getAttribute('role') === 'follower' && follower.getAttribute('status') === 'connected', 'a follower');
    // A view that saves and closes: the element goes with it. The write is stored and stays queued
    // "for the next client on this database"; the leader is that client.
    const write = follower.queueOperation(upsert('saved', 'n1', { text: 'saved on close' }));
    void write.catch(() => undefined);
    follower.remove();
    await waitFor(() => operationFrames().includes('saved'), 'the write at the server');
  });

  it('refuses declared effects that cannot be stored at the call, and shows nothing of them', async () => {
    const element = await mount();
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the first result', () => true);
    const refusal = await element.queueOperation({
      type: 'note.stamp', payload: {},
      effects: [{ type: 'upsert', entityType: 'note', entityId: 'n1', data: { format: () => 'not data' } }],
    }).then(() => undefined, (error: unknown) => error);
    expect(refusal, 'a clear error at the call').to.be.instanceOf(SyncError);
    expect((refusal as SyncError).code).to.equal('operation');
    await nextTask();
    expect(observed.calls.map((call) => call.rows.length), 'never shown').to.deep.equal([0]);
  });

  it('a created entity never shows twice: the declared one under a client id and the server\'s, when the batch names the operation it carries (1.2)', async () => {
    const element = await mount();
    const observed = new Observed();
    element.observe('note', observed.listener);
    const done = element.queueOperation({
      type: 'note.create', id: 'c1', payload: { text: 'hello' },
      effects: [{ type: 'upsert', entityType: 'note', entityId: 'draft-c1', data: { text: 'hello' } }],
    });
    await observed.waitFor('the draft', (rows) => rows.length === 1);
    await waitFor(() => operationFrames().includes('c1'), 'the operation at the server');
    // The server names the note itself; it sends the change, naming the operation it carries
    // (protocol 1.2), then the ack (for clients that do not read the name).
    const seen = record(element, ['changes']);
    await mock.send({ type: 'changes', lsn: '0/10', changes: [note('srv-7', { text: 'hello' })], operations: ['c1'] });
    await seen.waitFor('changes', (detail) => detail.lsn === '0/10');
    await mock.send({ type: 'operation_complete', id: 'c1', lsn: '0/10' });
    await done;
    await observed.waitFor('the server\'s note alone', (rows) => rows.length === 1 && rows[0]!.entityId === 'srv-7');
    expect(observed.calls.map((call) => call.rows.map((row) => row.entityId)), 'never both').to.not.deep.include(['draft-c1', 'srv-7']);
  });

  it('calls no observer when a write settles under a later pending write to the same entity (nothing visible changes)', async () => {
    const element = await mount();
    await commit(element, '0/5', note('n1', { title: 'a' }));
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the server value', (rows) => rows.length === 1);
    const patch = (id: string, data: Record<string, unknown>) =>
      element.queueOperation({ type: 'patch', id, payload: { entityType: 'note', entityId: 'n1', data } });
    const first = patch('p1', { title: 'b' });
    void patch('p2', { body: 'typed on' }).catch(() => undefined);
    await waitFor(() => operationFrames().length === 2, 'both at the server');
    await commit(element, '0/10', note('n1', { title: 'b' }));
    const before = observed.calls.length;
    const shown = observed.last!.rows[0];
    const acks = record(element, ['operation_complete']);
    await mock.send({ type: 'operation_complete', id: 'p1', lsn: '0/10' });
    await acks.waitFor('operation_complete');
    await first;
    await nextTask();
    expect(await element.getEntity('note', 'n1'), 'what a read shows: as before the ack').to.deep.equal(shown);
    expect(observed.calls.length, 'no call: the row is as it was').to.equal(before);
  });

  it('a follower that takes over after the leader\'s tab closed between its worker\'s commit and the relay shows that commit and settles what it covered', async () => {
    const clientId = 'review-client';
    // The leading tab: it holds the lock; this page plays its part.
    let closeLeader!: () => void;
    await new Promise<void>((leading) => {
      void navigator.locks.request(tabsName(dbName, clientId), () => new Promise<void>((closed) => { closeLeader = closed; leading(); }));
    });
    const follower = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'client-id': clientId, 'backoff-initial': '20', 'backoff-max': '50' });
    follower.createWorker = mock.create;
    document.body.append(follower);
    elements.push(follower);
    const observed = new Observed();
    follower.observe('note', observed.listener);
    await observed.waitFor('the first result', () => true);
    const write = follower.queueOperation(upsert('w1', 'n1', { by: 'follower' }));
    void write.catch(() => undefined);
    await observed.waitFor('the write, pending', (rows) => rows[0]?.pending === true);
    // The leader's worker commits the batch carrying the write (and deletes its outbox record in the
    // same transaction, as change-store.ts does); then its tab closes before relaying the event.
    const db = await openSyncDB(dbName);
    const tx = db.transaction(['entities', 'meta', 'outbox'], 'readwrite');
    void tx.objectStore('entities').put({ entityType: 'note', entityId: 'n1', data: { by: 'follower' }, lsn: '0/10' });
    void tx.objectStore('entities').put({ entityType: 'note', entityId: 'n2', data: { by: 'someone else' }, lsn: '0/10' });
    void tx.objectStore('meta').put('0/10', 'lastLSN');
    await removeFromGroups(tx.objectStore('outbox'), [{ id: 'w1' }]);
    await tx.done;
    db.close();
    closeLeader();
    await waitFor(() => follower.getAttribute('role') === 'leader' && follower.getAttribute('status') === 'connected', 'the follower leads');
    await waitFor(() => mock.framesOf('sync').length > 0, 'its sync at the server');
    expect(mock.framesOf('sync').at(-1)!.lastLSN, 'it resumes after the commit').to.equal('0/10');
    await commit(follower, '0/11', note('n3', {}));
    await observed.waitFor('n3', (rows) => rows.some((row) => row.entityId === 'n3'));
    expect(observed.ids(), 'the live query holds what the store holds').to.deep.equal((await follower.getEntities('note')).map((row) => row.entityId));
    expect((await follower.getEntities('note')).map((row) => [row.entityId, row.pending]), 'the write left the outbox: it is not pending')
      .to.deep.equal([['n1', undefined], ['n2', undefined], ['n3', undefined]]);
  });
});

describe('live queries, first read against buffered changes', () => {
  const stored = (entityId: string, data: unknown, lsn: string): StoredEntity => ({ entityType: 'note', entityId, data, lsn });

  it('the first result is never half a batch when the read already saw a commit whose event is still on its way', async () => {
    // The local store as the worker commits to it; the read returns what is committed when it runs.
    const store = new Map([['a', stored('a', { v: 0 }, '0/1')], ['b', stored('b', { v: 0 }, '0/1')]]);
    let runRead!: () => void;
    const reading = new Promise<void>((resolve) => { runRead = resolve; });
    const live = new LiveQueries({
      layer: new PendingLayer(),
      // The read returns the committed store with every commit the page heard of (LocalView merges them).
      load: async () => { await reading; return [...store.values()]; },
      report: () => undefined,
    });
    const calls: (readonly SyncEntity[])[] = [];
    live.observe('note', (rows) => calls.push(rows), {});
    // Batch 0/2 (a -> 1) commits and its `changes` event arrives while the read waits.
    store.set('a', stored('a', { v: 1 }, '0/2'));
    live.serverChanges([{ type: 'update', entityType: 'note', entityId: 'a', data: { v: 1 } }], '0/2');
    // Batch 0/3 (a -> 2, b -> 2) commits before the read runs; its event (relayed by the leader's
    // tab, in a follower) arrives only after the read.
    store.set('a', stored('a', { v: 2 }, '0/3'));
    store.set('b', stored('b', { v: 2 }, '0/3'));
    runRead();
    await new Promise((resolve) => setTimeout(resolve, 0)); // the read and the first call, due in this turn
    expect(calls.length).to.equal(1);
    expect(calls[0]!.map((row) => [row.entityId, row.data]), 'the committed store: batch 0/3 whole').to.deep.equal([['a', { v: 2 }], ['b', { v: 2 }]]);
  });
});
