import { expect } from '@open-wc/testing';
import type { SyncState } from '../src/protocol/state.ts';
import { WorkerHarness } from './worker/harness.ts';

const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40 };

const update = (entityId: string, data: unknown, entityType = 'todo') => ({ type: 'update', entityType, entityId, data });
const remove = (entityId: string, entityType = 'todo') => ({ type: 'delete', entityType, entityId });

describe('sync worker: applying changes', () => {
  let harness: WorkerHarness;

  beforeEach(async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
  });

  afterEach(async () => {
    await harness.stop();
  });

  it('applies a batch in order with its LSN and posts the changes', async () => {
    await harness.send({
      type: 'changes',
      changes: [update('1', { v: 1 }), update('2', { v: 2 }), update('1', { v: 3 }), remove('2')],
      lsn: '0/10',
    });
    const event = await harness.waitForEvent('changes');
    expect(event.lsn).to.equal('0/10');
    expect(event.changes).to.have.length(4);
    expect(await harness.entity('todo', '1')).to.deep.equal({ entityType: 'todo', entityId: '1', data: { v: 3 }, lsn: '0/10' });
    expect(await harness.entity('todo', '2')).to.equal(undefined);
    expect(await harness.storedLSN()).to.equal('0/10');
    await harness.waitForState('lastLSN 0/10', (state) => state.lastLSN === '0/10');
  });

  it('accepts every batch shape: batch_update, sync_data, entity_update, entity_delete', async () => {
    await harness.send({ type: 'batch_update', batchId: 'b1', data: [update('a', 1)], lsn: '0/1' });
    await harness.send({ type: 'sync_data', data: [update('b', 2)], lsn: '0/2' });
    await harness.send({ type: 'entity_update', entityType: 'todo', entityId: 'c', data: 3, timestamp: 1700000000000, lsn: '0/3' });
    await harness.send({ type: 'entity_delete', entityType: 'todo', entityId: 'a', lsn: '0/4' });
    await harness.waitFor('four batches', () => (harness.eventsOf('changes').length === 4 ? true : undefined));
    expect(harness.eventsOf('changes').map((event) => event.lsn)).to.deep.equal(['0/1', '0/2', '0/3', '0/4']);
    expect(await harness.entity('todo', 'a')).to.equal(undefined);
    expect((await harness.entity('todo', 'b'))?.data).to.equal(2);
    expect(await harness.entity('todo', 'c')).to.deep.equal({
      entityType: 'todo', entityId: 'c', data: 3, timestamp: 1700000000000, lsn: '0/3',
    });
    expect(await harness.storedLSN()).to.equal('0/4');
  });

  it('applies a batch without an LSN and leaves the stored LSN where it was', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 'x')], lsn: '0/7' });
    await harness.send({ type: 'batch_update', batchId: 'b', data: [update('2', 'y')] });
    await harness.send({ type: 'entity_update', entityType: 'todo', entityId: '3', data: 'z' });
    await harness.waitFor('three batches', () => (harness.eventsOf('changes').length === 3 ? true : undefined));
    expect(harness.eventsOf('changes').map((event) => event.lsn)).to.deep.equal(['0/7', undefined, undefined]);
    expect((await harness.entity('todo', '3'))?.data).to.equal('z');
    expect(await harness.storedLSN()).to.equal('0/7');
  });

  it('orders LSNs numerically across hex-digit boundaries, never as strings', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 'ff')], lsn: '0/FF' });
    await harness.send({ type: 'changes', changes: [update('1', '100')], lsn: '0/100' });
    await harness.send({ type: 'changes', changes: [update('1', 'high')], lsn: '1/0' });
    await harness.send({ type: 'changes', changes: [update('1', 'stale')], lsn: '0/FF' });
    await harness.send({ type: 'changes', changes: [update('1', 'stale too')], lsn: '0/FFFFFFFF' });
    await harness.barrier();
    expect(harness.eventsOf('changes').map((event) => event.lsn)).to.deep.equal(['0/FF', '0/100', '1/0']);
    expect((await harness.entity('todo', '1'))?.data).to.equal('high');
    expect(await harness.storedLSN()).to.equal('1/0');
  });

  it('skips a replayed batch whole after a reconnect', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 'first')], lsn: '0/5' });
    await harness.send({ type: 'changes', changes: [update('1', 'second'), update('2', 'new')], lsn: '0/6' });
    await harness.waitFor('two batches', () => (harness.eventsOf('changes').length === 2 ? true : undefined));
    await harness.mock({ mock: 'close', code: 1012, reason: 'restart' });
    const resync = await harness.waitFor('a sync on the second connection', () =>
      harness.framesOf('sync').find(({ conn }) => conn === 2));
    expect(resync.frame.lastLSN).to.equal('0/6');
    // A server that replays too much: the same batches again, then a new one.
    await harness.send({ type: 'changes', changes: [update('1', 'first'), remove('2')], lsn: '0/5' });
    await harness.send({ type: 'changes', changes: [update('1', 'second'), update('2', 'new')], lsn: '0/6' });
    await harness.send({ type: 'changes', changes: [update('3', 'third')], lsn: '0/7' });
    await harness.barrier();
    expect(harness.eventsOf('changes').map((event) => event.lsn)).to.deep.equal(['0/5', '0/6', '0/7']);
    expect((await harness.entity('todo', '1'))?.data).to.equal('second');
    expect((await harness.entity('todo', '2'))?.data).to.equal('new');
    expect(await harness.storedLSN()).to.equal('0/7');
  });

  it('skips invalid change items, reports them once, and applies the rest', async () => {
    await harness.send({
      type: 'changes',
      changes: [
        update('ok-1', 1),
        { type: 'update', entityType: 'todo', data: 2 },
        { type: 'rename', entityType: 'todo', entityId: 'x' },
        { type: 'update', entityType: 'todo', entityId: 'no-data' },
        'not an object',
        update('ok-2', 3),
      ],
      lsn: '0/9',
    });
    const error = await harness.waitForEvent('error');
    expect(error.code).to.equal('invalid_change');
    expect(error.invalid?.map((item) => item.index)).to.deep.equal([1, 2, 3, 4]);
    const applied = await harness.waitForEvent('changes');
    expect(applied.changes.map((change) => change.entityId)).to.deep.equal(['ok-1', 'ok-2']);
    expect(await harness.entity('todo', 'no-data')).to.equal(undefined);
    expect((await harness.entity('todo', 'ok-2'))?.data).to.equal(3);
    expect(await harness.storedLSN()).to.equal('0/9');
    expect(harness.eventsOf('error')).to.have.length(1);
  });

  it('reports malformed frames as protocol errors, keeps the socket and handles later frames', async () => {
    const bad = [
      'not json',
      '[1,2]',
      '{"type":5}',
      '{"changes":[]}',
      JSON.stringify({ type: 'changes', changes: [update('1', 1)], lsn: 'zz' }),
      JSON.stringify({ type: 'changes', changes: [update('1', 1)], lsn: '0/123456789' }),
      JSON.stringify({ type: 'changes', changes: 'nope', lsn: '0/1' }),
      JSON.stringify({ type: 'sync_start', total: -1 }),
    ];
    for (const frame of bad) await harness.send(frame);
    await harness.send({ type: 'changes', changes: [update('1', 'fine')], lsn: '0/1' });
    await harness.waitForEvent('changes');
    const errors = harness.eventsOf('error');
    expect(errors.map((event) => event.code)).to.deep.equal(bad.map(() => 'protocol'));
    expect(errors[4]!.message).to.contain('LSN');
    expect(harness.eventsOf('disconnected')).to.have.length(0);
    expect(harness.connections).to.have.length(1);
    expect((await harness.entity('todo', '1'))?.data).to.equal('fine');
  });

  it('writes a batch and its LSN all or nothing: a failed write leaves the LSN, resyncs from it', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 'kept')], lsn: '0/1' });
    await harness.waitForEvent('changes');
    await harness.mock({ mock: 'fail_writes', entityId: 'poison' });
    const from = harness.events.length;
    await harness.send({
      type: 'changes',
      changes: [update('1', 'overwritten?'), update('2', 'new?'), update('poison', 'x'), update('3', 'after')],
      lsn: '0/2',
    }, {
      // Queued behind the failing batch: dropped, the server resends it after the resync.
      type: 'changes', changes: [update('4', 'behind')], lsn: '0/3',
    });
    const error = await harness.waitForEvent('error', () => true, from);
    expect(error.code).to.equal('storage');
    const resync = await harness.waitFor('a sync on the second connection', () =>
      harness.framesOf('sync').find(({ conn }) => conn === 2));
    expect(resync.frame.lastLSN).to.equal('0/1');
    expect(new URL(harness.connections[1]!.url).searchParams.get('lastLSN')).to.equal('0/1');
    expect(await harness.storedLSN()).to.equal('0/1');
    expect((await harness.entity('todo', '1'))?.data).to.equal('kept');
    expect(await harness.entity('todo', '2')).to.equal(undefined);
    expect(await harness.entity('todo', '4')).to.equal(undefined);
    expect(harness.eventsOf('changes', from)).to.have.length(0);
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state.lastLSN).to.equal('0/1');
    expect(state.lastError).to.equal(null); // cleared by the new connection

    await harness.mock({ mock: 'fail_writes', entityId: null });
    await harness.send({
      type: 'changes',
      changes: [update('1', 'overwritten'), update('2', 'new'), update('poison', 'x'), update('3', 'after')],
      lsn: '0/2',
    });
    await harness.send({ type: 'changes', changes: [update('4', 'behind')], lsn: '0/3' });
    await harness.waitFor('two batches after the resync', () =>
      (harness.eventsOf('changes', from).length === 2 ? true : undefined));
    expect((await harness.entity('todo', '1'))?.data).to.equal('overwritten');
    expect((await harness.entity('todo', '4'))?.data).to.equal('behind');
    expect(await harness.storedLSN()).to.equal('0/3');
  });

  it('tracks catch-up progress and completes after the batches before sync_complete', async () => {
    await harness.send({ type: 'sync_start', lsn: '0/0', total: 3 });
    await harness.send({ type: 'sync_data', data: [update('1', 1), update('2', 2)], lsn: '0/2' });
    await harness.send({ type: 'sync_data', data: [update('3', 3)], lsn: '0/3' });
    await harness.send({ type: 'sync_complete', lsn: '0/3' });
    await harness.send({ type: 'changes', changes: [update('4', 4)], lsn: '0/4' });
    await harness.waitFor('the live batch', () => harness.eventsOf('changes').find((event) => event.lsn === '0/4'));
    const order = harness.events
      .filter((event) => ['sync_started', 'changes', 'sync_progress', 'sync_completed'].includes(event.type))
      .map((event) => {
        if (event.type === 'sync_progress') return `progress ${event.applied}/${event.total}`;
        if (event.type === 'sync_completed') return `completed ${event.lsn}`;
        if (event.type === 'changes') return `changes ${event.lsn}`;
        return event.type;
      });
    expect(order).to.deep.equal([
      'sync_started',
      'changes 0/2',
      'progress 2/3',
      'changes 0/3',
      'progress 3/3',
      'completed 0/3',
      'changes 0/4',
    ]);
    const syncing = harness.eventsOf('status').map((event) => event.state.syncing);
    expect(syncing).to.include(true);
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state).to.include({ syncing: false, progress: null, lastLSN: '0/4' });
  });

  it('stores sync_complete.lsn as the resume point after a whole catch-up, and skips later batches at or below it', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 1)], lsn: '0/AB' });
    await harness.send({ type: 'sync_complete', lsn: '0/FFFF' });
    const completed = await harness.waitForEvent('sync_completed');
    expect(completed.lsn).to.equal('0/FFFF');
    expect(await harness.storedLSN()).to.equal('0/FFFF');
    // A change the server chose not to send this client is behind the resume point now.
    await harness.send({ type: 'changes', changes: [update('2', 2)], lsn: '0/FF00' });
    await harness.barrier();
    expect(await harness.entity('todo', '2')).to.equal(undefined);
    expect(harness.eventsOf('changes').flatMap((event) => event.changes)).to.have.length(1);
  });

  it('keeps the stored LSN at sync_complete when a frame of the catch-up was dropped as malformed, until the next sync', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 1)], lsn: '0/AB' });
    await harness.send({ type: 'changes', changes: [update('2', 2)], lsn: 'not an LSN' });
    await harness.send({ type: 'sync_complete', lsn: '0/FFFF' });
    expect((await harness.waitForEvent('sync_completed')).lsn).to.equal('0/AB');
    expect(await harness.storedLSN()).to.equal('0/AB');
    // The server asks for a fresh sync: that catch-up is whole again.
    const from = harness.framesOf('sync').length;
    await harness.send({ type: 'sync_request' });
    await harness.waitFor('a second sync', () => harness.framesOf('sync').length > from || undefined);
    await harness.send({ type: 'sync_complete', lsn: '0/FFFF' });
    await harness.waitFor('the end stored', () => harness.eventsOf('sync_completed').find((event) => event.lsn === '0/FFFF'));
  });

  it('moves the resume point with an empty batch, and reads null optional fields as absent', async () => {
    await harness.send({ type: 'changes', changes: [], lsn: '0/20' });
    await harness.send({ type: 'entity_update', entityType: 'todo', entityId: 'n', data: 1, timestamp: null, lsn: null });
    await harness.send({ type: 'batch_update', batchId: null, data: [{ ...update('m', 2), timestamp: null }], lsn: '0/30' });
    await harness.send({ type: 'sync_start', lsn: null, total: null });
    await harness.barrier();
    expect(harness.eventsOf('error')).to.deep.equal([]);
    expect(await harness.entity('todo', 'n')).to.deep.equal({ entityType: 'todo', entityId: 'n', data: 1 });
    expect(await harness.entity('todo', 'm')).to.deep.equal({ entityType: 'todo', entityId: 'm', data: 2, lsn: '0/30' });
    expect(await harness.storedLSN()).to.equal('0/30');
    expect(harness.eventsOf('changes').map((event) => event.lsn)).to.deep.equal(['0/20', undefined, '0/30']);
  });

  it('on reset: empties the store and the resume point, keeps the outbox, tells the page, and syncs from 0/0', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 1), update('2', 2)], lsn: '0/50' });
    await harness.waitForEvent('changes');
    await harness.queue({ id: 'kept', type: 'todo.rename', payload: { to: 'x' } });
    await harness.waitForFrame('operation');
    const from = harness.framesOf('sync').length;
    await harness.send({ type: 'reset', reason: 'the database was restored' });
    expect(await harness.waitForEvent('sync_reset')).to.deep.equal({ type: 'sync_reset', reason: 'the database was restored' });
    const sync = await harness.waitForFrame('sync', () => true, from);
    expect(sync.frame.lastLSN).to.equal('0/0');
    expect(await harness.entity('todo', '1')).to.equal(undefined);
    expect(await harness.storedLSN()).to.equal(undefined);
    expect(await harness.outboxIds()).to.deep.equal(['kept']);
    await harness.waitForState('lastLSN 0/0', (state) => state.lastLSN === '0/0');
    await harness.send({ type: 'changes', changes: [update('1', 'again')], lsn: '0/3' });
    await harness.waitForEvent('changes', (event) => event.lsn === '0/3');
    expect((await harness.entity('todo', '1'))?.data).to.equal('again');
  });

  it('posts server errors, and frames of unknown types as message events', async () => {
    await harness.send({ type: 'sync_error', message: 'log truncated' });
    await harness.send({ type: 'error', message: 'rate limited' });
    await harness.send({ type: 'presence', user: 'ann', online: true });
    const message = await harness.waitForEvent('message');
    expect(message.message).to.deep.equal({ type: 'presence', user: 'ann', online: true });
    expect(harness.eventsOf('error').map((event) => [event.code, event.message])).to.deep.equal([
      ['server', 'The server could not serve the sync: log truncated'],
      ['server', 'rate limited'],
    ]);
    expect(harness.eventsOf('disconnected')).to.have.length(0);
  });

  it('normalizes lower-case LSNs', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 1)], lsn: '0/abc' });
    const event = await harness.waitForEvent('changes');
    expect(event.lsn).to.equal('0/ABC');
    expect(await harness.storedLSN()).to.equal('0/ABC');
  });
});
