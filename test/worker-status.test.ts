import { expect } from '@open-wc/testing';
import { LocalStore } from '../src/db/local-store.ts';
import { compareLSN, formatLSN } from '../src/protocol/lsn.ts';
import type { QueuedOperation, SyncState } from '../src/protocol/state.ts';
import type { WorkerEvent } from '../src/protocol/worker-messages.ts';
import { WorkerHarness } from './worker/harness.ts';

const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40 };

/** Each event with the newest state the page had been given when the event arrived. */
function withState(events: WorkerEvent[]): { event: WorkerEvent; state: SyncState | undefined }[] {
  let state: SyncState | undefined;
  const out: { event: WorkerEvent; state: SyncState | undefined }[] = [];
  for (const event of events) {
    if (event.type === 'status') state = event.state;
    else out.push({ event, state });
  }
  return out;
}

describe('sync worker: status posts', () => {
  let harness: WorkerHarness;

  afterEach(async () => {
    await harness.stop();
  });

  it('coalesces the states of bursts of acknowledgements into a few status posts, none stale', async () => {
    const window = 64;
    const count = 3 * window;
    harness = await WorkerHarness.start({ config: FAST, inFlightWindow: window });
    await harness.connect();
    const records: QueuedOperation[] = Array.from({ length: count }, (_, i) => ({
      id: `op-${i}`, type: 'todo.create', payload: { i }, priority: 0, seq: i, queuedAt: Date.now(),
    }));
    await new LocalStore(await harness.database()).addOperations(records);
    await Promise.all(records.map((operation) => harness.request({ type: 'operation', operation })));

    const from = harness.events.length;
    const lsn = (i: number): string => formatLSN(BigInt(i + 1));
    for (let wave = 0; wave < count / window; wave += 1) {
      const sent = await harness.waitFor(`wave ${wave} sent`, () => {
        const frames = harness.framesOf('operation');
        return frames.length === (wave + 1) * window ? frames.slice(wave * window) : undefined;
      });
      // What a server does for each: the change it made, echoed, then the acknowledgement.
      await harness.send(...sent.flatMap(({ frame }) => {
        const { id } = frame.operation as { id: string };
        const i = Number(id.slice('op-'.length));
        return [
          { type: 'changes', changes: [{ type: 'update', entityType: 'todo', entityId: id, data: { i } }], lsn: lsn(i) },
          { type: 'operation_complete', id, lsn: lsn(i) },
        ];
      }));
    }
    // Acknowledgements are taken as they come, ahead of the commits of their changes: wait for both.
    await harness.waitFor('every acknowledgement', () =>
      (harness.eventsOf('operation_complete').length === count ? true : undefined));
    await harness.waitForEvent('changes', (event) => event.lsn === lsn(count - 1));

    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state).to.include({ pendingOperations: 0, lastLSN: lsn(count - 1) });
    expect(harness.eventsOf('status').at(-1)?.state).to.deep.equal(state);
    // One post per state change would be two per operation here (lastLSN, pendingOperations).
    const posts = harness.eventsOf('status', from).length;
    expect(posts).to.be.above(0).and.below(count / 10);

    let completed = 0;
    for (const { event, state: seen } of withState(harness.events)) {
      if (event.type === 'changes' && event.lsn !== undefined) {
        expect(compareLSN(seen!.lastLSN, event.lsn), `state before changes ${event.lsn}`).to.be.at.least(0);
      }
      if (event.type === 'operation_complete') {
        completed += 1;
        // An answer carries the count it leaves (the state post can come later, for many answers).
        expect(event.pending ?? seen!.pendingOperations, `state with completion #${completed}`).to.be.at.most(count - completed);
      }
    }
  });

  it('posts each event and each answer after the state that goes with it', async () => {
    harness = await WorkerHarness.start({ config: FAST, init: false });
    const initial = await harness.request<SyncState>({ type: 'init', config: harness.config });
    expect(harness.eventsOf('status').at(-1)?.state).to.deep.equal(initial);
    await harness.mock({ mock: 'random', value: 0 });
    await harness.connect();
    await harness.send({ type: 'sync_start', total: 1 });
    await harness.send({ type: 'sync_data', data: [{ type: 'update', entityType: 'todo', entityId: '1', data: 1 }], lsn: '0/1' });
    await harness.send({ type: 'sync_complete' });
    await harness.waitForEvent('sync_completed');
    await harness.mock({ mock: 'close', code: 1011, reason: 'restart' });
    await harness.waitFor('a second connection', () => harness.framesOf('sync').find(({ conn }) => conn === 2));
    await harness.mock({ mock: 'close', code: 4001, reason: 'unauthorized' });
    await harness.waitForEvent('error', (event) => event.code === 'closed');

    const seen = withState(harness.events);
    for (const { event, state } of seen) {
      switch (event.type) {
        case 'connected':
          expect(state).to.include({ status: 'connected', isConnected: true, lastError: null });
          break;
        case 'disconnected':
          expect(state?.isConnected, 'disconnected').to.equal(false);
          expect(state?.status).to.equal(event.willReconnect ? 'reconnecting' : 'error');
          break;
        case 'reconnecting':
          expect(state).to.include({ status: 'reconnecting', reconnectAttempts: event.attempt });
          break;
        case 'sync_started':
          expect(state?.syncing, 'sync_started').to.equal(true);
          break;
        case 'sync_progress':
          expect(state?.progress).to.deep.equal({ applied: event.applied, total: event.total });
          break;
        case 'changes':
          expect(state?.lastLSN).to.equal(event.lsn);
          break;
        case 'sync_completed':
          expect(state).to.include({ syncing: false, progress: null, reconnectAttempts: 0 });
          break;
        case 'error':
          expect(state?.lastError).to.deep.equal({ code: event.code, message: event.message });
          expect(state?.status).to.equal('error');
          break;
        default:
          break;
      }
    }
    expect(seen.map(({ event }) => event.type)).to.include.members([
      'connected', 'sync_started', 'changes', 'sync_progress', 'sync_completed', 'disconnected', 'reconnecting', 'error',
    ]);
  });
});
