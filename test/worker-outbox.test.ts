import { expect } from '@open-wc/testing';
import type { SyncState } from '../src/protocol/state.ts';
import { sleep } from './helpers/wait.ts';
import { WorkerHarness, type ReceivedFrame } from './worker/harness.ts';

const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40 };

const operationIds = (frames: ReceivedFrame[]): string[] =>
  frames.map(({ frame }) => (frame.operation as { id: string }).id);

describe('sync worker: outbox', () => {
  let harness: WorkerHarness;

  afterEach(async () => {
    await harness.stop();
  });

  it('sends queued operations in priority order, then queue order, once connected', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.queue({ id: 'low-1', priority: 0, seq: 1 });
    await harness.queue({ id: 'high', priority: 5, seq: 2, type: 'todo.create', payload: { title: 'x' } });
    await harness.queue({ id: 'low-2', priority: 0, seq: 3 });
    await harness.queue({ id: 'mid', priority: 1, seq: 4 });
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state.pendingOperations).to.equal(4);
    await harness.connect();
    await harness.waitFor('four operations', () => (harness.framesOf('operation').length === 4 ? true : undefined));
    const frames = harness.framesOf('operation');
    expect(operationIds(frames)).to.deep.equal(['high', 'mid', 'low-1', 'low-2']);
    expect(frames[0]!.frame).to.deep.equal({
      type: 'operation',
      operation: { id: 'high', type: 'todo.create', payload: { title: 'x' } },
    });
  });

  it('loads operations left in the outbox by an earlier page at init', async () => {
    harness = await WorkerHarness.start({ config: FAST, init: false });
    await harness.queue({ id: 'left-b', seq: 2 }, false);
    await harness.queue({ id: 'left-a', seq: 1 }, false);
    const state = await harness.request<SyncState>({ type: 'init', config: harness.config });
    expect(state.pendingOperations).to.equal(2);
    await harness.connect();
    await harness.waitFor('two operations', () => (harness.framesOf('operation').length === 2 ? true : undefined));
    expect(operationIds(harness.framesOf('operation'))).to.deep.equal(['left-a', 'left-b']);
  });

  it('completes an operation on an ack the stored LSN already covers (or without an lsn): record deleted, then operation_complete, settled', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.send({ type: 'changes', changes: [{ type: 'update', entityType: 'todo', entityId: 'a', data: { title: 'a' } }], lsn: '0/9' });
    await harness.waitForEvent('changes');
    await harness.queue({ id: 'op-1', type: 'todo.create', payload: { title: 'a' } });
    await harness.queue({ id: 'op-2', type: 'todo.touch', payload: {} });
    await harness.waitFor('two operations', () => (harness.framesOf('operation').length === 2 ? true : undefined));
    await harness.waitForState('two pending', (state) => state.pendingOperations === 2);
    await harness.send({ type: 'operation_complete', id: 'op-1', lsn: '0/9' }, { type: 'operation_complete', id: 'op-2' });
    await harness.waitFor('both answered', () => (harness.eventsOf('operation_complete').length === 2 ? true : undefined));
    expect(harness.eventsOf('operation_complete')).to.deep.equal([
      { type: 'operation_complete', id: 'op-1', lsn: '0/9', pending: 1 },
      { type: 'operation_complete', id: 'op-2', pending: 0 },
    ]);
    // Answered at once; each leaves the pending layer once its record is gone.
    await harness.waitFor('both settled', () => {
      const settled = harness.eventsOf('changes').flatMap((event) => event.settled ?? []);
      return settled.includes('op-1') && settled.includes('op-2') ? true : undefined;
    });
    expect(await harness.outboxIds()).to.deep.equal([]);
    await harness.waitForState('none pending', (state) => state.pendingOperations === 0);
  });

  it('keeps the record of an operation acknowledged ahead of the stored LSN until the batch that covers it commits, and deletes it in that commit', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'op-1', type: 'upsert', payload: { entityType: 'todo', entityId: 'a', data: { title: 'a' } } });
    await harness.waitForFrame('operation');
    // The server acknowledges before it sends the change (a server may answer in either order).
    await harness.send({ type: 'operation_complete', id: 'op-1', lsn: '0/9' });
    expect(await harness.waitForEvent('operation_complete')).to.deep.equal({ type: 'operation_complete', id: 'op-1', lsn: '0/9', pending: 0 });
    await harness.waitForState('none pending', (state) => state.pendingOperations === 0);
    expect(await harness.outboxIds(), 'kept until the store shows its effect').to.deep.equal(['op-1']);
    await harness.send({ type: 'changes', changes: [{ type: 'update', entityType: 'todo', entityId: 'b', data: 0 }], lsn: '0/5' });
    expect((await harness.waitForEvent('changes', (event) => event.lsn === '0/5')).settled).to.equal(undefined);
    expect(await harness.outboxIds(), 'a batch below the ack covers nothing').to.deep.equal(['op-1']);
    await harness.send({ type: 'changes', changes: [{ type: 'update', entityType: 'todo', entityId: 'a', data: { title: 'a' } }], lsn: '0/9' });
    const covering = await harness.waitForEvent('changes', (event) => event.lsn === '0/9');
    expect(covering.settled).to.deep.equal(['op-1']);
    expect(await harness.outboxIds()).to.deep.equal([]);
    // Not sent again on the next connection: it was answered.
    await harness.mock({ mock: 'close', code: 1001, reason: 'restart' });
    await harness.waitForFrame('sync', ({ conn }) => conn === 2);
    await harness.roundTrip();
    expect(harness.framesOf('operation').filter(({ conn }) => conn === 2)).to.have.length(0);
  });

  it('after a reset, sends again an operation acknowledged in the old log that no commit covered', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'op-1', type: 'todo.create', payload: { title: 'a' } });
    await harness.waitForFrame('operation');
    await harness.send({ type: 'operation_complete', id: 'op-1', lsn: '5/0' });
    await harness.waitForEvent('operation_complete');
    await harness.send({ type: 'reset', reason: 'restored from a backup' });
    await harness.waitForEvent('sync_reset');
    const again = await harness.waitFor('the operation sent again', () => harness.framesOf('operation')[1]);
    expect(operationIds([again])).to.deep.equal(['op-1']);
    await harness.waitForState('one pending', (state) => state.pendingOperations === 1);
    await harness.send({ type: 'operation_complete', id: 'op-1' });
    await harness.waitForEvent('changes', (event) => (event.settled ?? []).includes('op-1'));
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('ignores an ack for an unknown id', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'known' });
    await harness.waitForFrame('operation');
    await harness.send({ type: 'operation_complete', id: 'stranger' }, { type: 'operation_error', id: 'other', message: 'no' });
    await harness.barrier();
    expect(harness.eventsOf('operation_complete')).to.have.length(0);
    expect(harness.eventsOf('operation_error')).to.have.length(0);
    expect(await harness.outboxIds()).to.deep.equal(['known']);
  });

  it('re-sends every unacknowledged operation with the same id after a reconnect', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'a', seq: 1 });
    await harness.queue({ id: 'b', seq: 2 });
    await harness.queue({ id: 'c', seq: 3 });
    await harness.waitFor('three operations', () => (harness.framesOf('operation').length === 3 ? true : undefined));
    await harness.send({ type: 'operation_complete', id: 'b' });
    await harness.waitForEvent('operation_complete');
    await harness.mock({ mock: 'close', code: 1006, reason: 'network' });
    await harness.waitFor('two operations on the second connection', () => {
      const again = harness.framesOf('operation').filter(({ conn }) => conn === 2);
      return again.length === 2 ? again : undefined;
    });
    const resent = harness.framesOf('operation').filter(({ conn }) => conn === 2);
    expect(operationIds(resent)).to.deep.equal(['a', 'c']);
    // The sync frame goes first on the new connection.
    const second = harness.frames.filter(({ conn }) => conn === 2).map(({ frame }) => frame.type);
    expect(second[0]).to.equal('sync');
    await harness.send({ type: 'operation_complete', id: 'a' }, { type: 'operation_complete', id: 'c' });
    await harness.waitFor('three completions', () =>
      (harness.eventsOf('operation_complete').length === 3 ? true : undefined));
    await harness.waitForSettled('a', 'b', 'c');
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('keeps at most its window (here 64) unacknowledged, so a later high-priority operation overtakes queued ones', async () => {
    harness = await WorkerHarness.start({ config: FAST, inFlightWindow: 64 });
    await harness.connect();
    for (let i = 0; i < 70; i += 1) await harness.queue({ id: `low-${i}`, seq: i });
    await harness.waitFor('64 operations', () => (harness.framesOf('operation').length === 64 ? true : undefined));
    await harness.queue({ id: 'urgent', priority: 10, seq: 100 });
    await harness.barrier();
    expect(harness.framesOf('operation')).to.have.length(64);
    const from = harness.frames.length;
    await harness.send({ type: 'operation_complete', id: 'low-0' });
    const next = await harness.waitForFrame('operation', () => true, from);
    expect(operationIds([next])).to.deep.equal(['urgent']);
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state.pendingOperations).to.equal(70);
  });

  it('writes a send_message operation as the raw frame and is done once written', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.queue({ id: 'chat-1', type: 'send_message', payload: { type: 'chat', text: 'hi' } });
    await harness.connect();
    const raw = await harness.waitForFrame('chat');
    expect(raw.frame).to.deep.equal({ type: 'chat', text: 'hi' });
    const done = await harness.waitForEvent('operation_complete');
    expect(done).to.deep.equal({ type: 'operation_complete', id: 'chat-1', settled: true, pending: 0 });
    expect(await harness.outboxIds()).to.deep.equal([]);
    expect(harness.framesOf('operation')).to.have.length(0);
  });

  it('rejects a send_message operation whose payload is not an object', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'bad', type: 'send_message', payload: 'text' });
    const failed = await harness.waitForEvent('operation_error');
    expect(failed.id).to.equal('bad');
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('deletes an operation the server rejects and never sends it again', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'doomed', seq: 1 });
    await harness.queue({ id: 'fine', seq: 2 });
    await harness.waitFor('two operations', () => (harness.framesOf('operation').length === 2 ? true : undefined));
    await harness.send({ type: 'operation_error', id: 'doomed', message: 'title too long' });
    const failed = await harness.waitForEvent('operation_error');
    expect(failed).to.deep.equal({ type: 'operation_error', id: 'doomed', message: 'title too long', entities: [], pending: 1 });
    expect(await harness.outboxIds()).to.deep.equal(['fine']);
    await harness.mock({ mock: 'close', code: 1001, reason: 'restart' });
    const resent = await harness.waitForFrame('operation', ({ conn }) => conn === 2);
    expect(operationIds([resent])).to.deep.equal(['fine']);
    await harness.roundTrip();
    expect(operationIds(harness.framesOf('operation').filter(({ conn }) => conn === 2))).to.deep.equal(['fine']);
  });

  it('keeps an operation the server defers (operation_error with retryable) and sends it again, same id, after a pause', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'later', seq: 1 });
    await harness.queue({ id: 'also', seq: 2 });
    await harness.waitFor('two operations', () => (harness.framesOf('operation').length === 2 ? true : undefined));
    const sent = performance.now();
    await harness.send(
      { type: 'operation_error', id: 'later', message: 'store unavailable', retryable: true },
      { type: 'operation_error', id: 'also', message: 'store unavailable', retryable: true },
    );
    const reported = await harness.waitForEvent('error', (event) => event.code === 'server');
    expect(reported.message).to.contain('stay queued');
    await harness.roundTrip();
    expect(harness.eventsOf('operation_error'), 'not rejected').to.have.length(0);
    expect(harness.eventsOf('error').filter((event) => event.code === 'server'), 'one report for the pause').to.have.length(1);
    expect(await harness.outboxIds(), 'both kept, in the order queued').to.deep.equal(['later', 'also']);
    expect(harness.framesOf('operation'), 'nothing re-sent during the pause').to.have.length(2);
    await harness.waitFor('both sent again', () => (harness.framesOf('operation').length === 4 ? true : undefined));
    expect(performance.now() - sent, 'after the pause (1 s)').to.be.greaterThan(900);
    expect(harness.eventsOf('error').filter((event) => event.code === 'server'), 'one report for the pause, none when it ends').to.have.length(1);
    expect(operationIds(harness.framesOf('operation').slice(2))).to.deep.equal(['later', 'also']);
    await harness.send({ type: 'operation_complete', id: 'later' }, { type: 'operation_complete', id: 'also' });
    await harness.waitFor('both completed and settled', () =>
      (harness.eventsOf('changes').flatMap((event) => event.settled ?? []).length === 2 ? true : undefined));
    expect(harness.eventsOf('operation_complete')).to.have.length(2);
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('rejects for good the one operation a server closes on with 1009 (too big), and sends the others', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.mock({ mock: 'max_payload', length: 500 });
    await harness.queue({ id: 'small-1', seq: 1 });
    await harness.queue({ id: 'big', seq: 2, payload: { text: 'x'.repeat(2_000) } });
    await harness.queue({ id: 'small-2', seq: 3 });
    await harness.queue({ id: 'small-3', seq: 4 });
    await harness.connect();
    // The close makes every operation in flight a suspect: from now on they go one at a time.
    const first = await harness.waitForFrame('operation', ({ conn }) => conn === 2);
    expect(operationIds([first])).to.deep.equal(['small-1']);
    await harness.barrier();
    expect(harness.framesOf('operation').filter(({ conn }) => conn === 2)).to.have.length(1);
    await harness.send({ type: 'operation_complete', id: 'small-1' });
    // 'big' goes alone and the server closes again: that is proof.
    const failed = await harness.waitForEvent('operation_error');
    expect(failed).to.deep.equal({
      type: 'operation_error',
      id: 'big',
      message: 'The server refused the operation as too large (close 1009)',
      entities: [],
      pending: 2,
    });
    expect(harness.oversized.map(({ conn }) => conn)).to.deep.equal([1, 2]);
    const next = await harness.waitForFrame('operation', ({ conn }) => conn === 3);
    expect(operationIds([next])).to.deep.equal(['small-2']);
    await harness.barrier();
    expect(harness.framesOf('operation').filter(({ conn }) => conn === 3)).to.have.length(1);
    await harness.send({ type: 'operation_complete', id: 'small-2' });
    const last = await harness.waitForFrame('operation', ({ conn }) => conn === 3, harness.frames.indexOf(next) + 1);
    expect(operationIds([last])).to.deep.equal(['small-3']);
    await harness.send({ type: 'operation_complete', id: 'small-3' });
    await harness.waitFor('three acknowledged', () => (harness.eventsOf('operation_complete').length === 3 ? true : undefined));
    // No suspect left: the normal window is back.
    await harness.queue({ id: 'after-1', seq: 5 });
    await harness.queue({ id: 'after-2', seq: 6 });
    await harness.waitFor('both sent unacknowledged', () =>
      (operationIds(harness.framesOf('operation')).filter((id) => id.startsWith('after-')).length === 2 ? true : undefined));
    await harness.send({ type: 'operation_complete', id: 'after-1' }, { type: 'operation_complete', id: 'after-2' });
    await harness.waitFor('five acknowledged', () => (harness.eventsOf('operation_complete').length === 5 ? true : undefined));
    // An answer is posted as it comes; its record is deleted just after.
    await harness.waitForSettled('after-1', 'after-2');
    expect(await harness.outboxIds()).to.deep.equal([]);
    expect(harness.eventsOf('operation_error')).to.have.length(1);
    expect(harness.connections).to.have.length(3);
  });

  it('does not retry forever when a send_message frame is what the server closes on with 1009', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.mock({ mock: 'max_payload', length: 500 });
    await harness.queue({ id: 'chat', seq: 1, type: 'send_message', payload: { type: 'chat', text: 'x'.repeat(2_000) } });
    await harness.queue({ id: 'fine', seq: 2 });
    await harness.connect();
    const done = await harness.waitForEvent('operation_complete');
    expect(done.id).to.equal('chat'); // written: done, whatever the server thought of it
    const resent = await harness.waitForFrame('operation', ({ conn }) => conn === 2);
    expect(operationIds([resent])).to.deep.equal(['fine']);
    await harness.send({ type: 'operation_complete', id: 'fine' });
    await harness.waitFor('fine acknowledged', () => harness.eventsOf('operation_complete').find((event) => event.id === 'fine'));
    await harness.barrier();
    await sleep(100); // a retry loop would dial on the backoff timer (10-40 ms here), so none can be waited for: outlast it several times
    expect(harness.oversized).to.have.length(1);
    expect(harness.connections).to.have.length(2);
    expect(harness.eventsOf('operation_error')).to.have.length(0);
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('does not blame the suspect alone in flight when a send_message frame went with it', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.mock({ mock: 'max_payload', length: 500 });
    await harness.queue({ id: 'lone' });
    await harness.waitForFrame('operation');
    await harness.mock({ mock: 'close', code: 1009, reason: 'too big' });
    const resent = await harness.waitForFrame('operation', ({ conn }) => conn === 2);
    expect(operationIds([resent])).to.deep.equal(['lone']);
    // 'lone' is a suspect alone in flight, but the page's raw frame is what the server refuses.
    await harness.request({ type: 'send_message', payload: { type: 'chat', text: 'z'.repeat(2_000) } });
    const again = await harness.waitForFrame('operation', ({ conn }) => conn === 3);
    expect(operationIds([again])).to.deep.equal(['lone']);
    expect(harness.oversized.map(({ conn }) => conn)).to.deep.equal([2]);
    await harness.send({ type: 'operation_complete', id: 'lone' });
    await harness.waitForSettled('lone');
    expect(harness.eventsOf('operation_error')).to.have.length(0);
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('clear_operations removes every unacknowledged operation and answers their ids', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.queue({ id: 'x', seq: 1 });
    await harness.queue({ id: 'y', seq: 2 });
    await harness.queue({ id: 'z', seq: 3 }, false); // stored but not yet announced
    const removed = await harness.request<string[]>({ type: 'clear_operations' });
    expect([...removed].sort()).to.deep.equal(['x', 'y', 'z']);
    expect(await harness.outboxIds()).to.deep.equal([]);
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state.pendingOperations).to.equal(0);
    await harness.connect();
    await harness.barrier();
    expect(harness.framesOf('operation')).to.have.length(0);
  });

  it('does not send an operation announced after a clear removed its record, but does once it is stored again', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    const late = await harness.queue({ id: 'late', seq: 1 }, false); // stored, announcement still on its way
    await harness.request<string[]>({ type: 'clear_operations' });
    await harness.request({ type: 'operation', operation: late }); // another tab's clear won the race
    await harness.connect();
    await harness.barrier();
    expect(harness.framesOf('operation')).to.have.length(0);
    expect((await harness.request<SyncState>({ type: 'get_status' })).pendingOperations).to.equal(0);
    await harness.queue({ id: 'late', seq: 2 }); // the app queues the same id anew
    await harness.waitForFrame('operation');
  });

  it('ignores an operation announced twice', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    const record = await harness.queue({ id: 'once' });
    await harness.request({ type: 'operation', operation: record });
    await harness.connect();
    await harness.waitForFrame('operation');
    await harness.barrier();
    expect(harness.framesOf('operation')).to.have.length(1);
  });

  it('says which entities a refused operation touched', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({
      id: 'move', type: 'todo.move', payload: { to: 'l2' },
      effects: [{ type: 'patch', entityType: 'todo', entityId: 't', data: { list: 'l2' } }, { type: 'upsert', entityType: 'list', entityId: 'l2', data: {} }],
    });
    await harness.queue({ id: 'gone', type: 'delete', payload: { entityType: 'todo', entityId: 'old' } });
    await harness.waitFor('two operations', () => (harness.framesOf('operation').length === 2 ? true : undefined));
    await harness.send({ type: 'operation_error', id: 'move', message: 'no such list' }, { type: 'operation_error', id: 'gone', message: 'locked' });
    await harness.waitFor('both refused', () => (harness.eventsOf('operation_error').length === 2 ? true : undefined));
    expect(harness.eventsOf('operation_error').map((event) => event.entities)).to.deep.equal([
      [{ entityType: 'todo', entityId: 't' }, { entityType: 'list', entityId: 'l2' }],
      [{ entityType: 'todo', entityId: 'old' }],
    ]);
  });
});
