import { expect } from '@open-wc/testing';
import { WorkerHarness } from './worker/harness.ts';

const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40, applyOnPage: true };

const update = (entityId: string, data: unknown) => ({ type: 'update', entityType: 'todo', entityId, data });

describe('sync worker: changes applied by the page (applyOnPage)', () => {
  let harness: WorkerHarness;

  beforeEach(async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
  });

  afterEach(async () => {
    await harness.stop();
  });

  it('hands new batches to the page, stores the LSN only after the page says they are committed, and skips replays', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 'a')], lsn: '0/10' });
    const apply = await harness.waitForEvent('apply');
    expect(apply.batches).to.deep.equal([{ changes: [update('1', 'a')], lsn: '0/10' }]);
    expect(await harness.storedLSN(), 'nothing stored before the page answers').to.equal(undefined);
    await harness.request({ type: 'applied', applyId: apply.applyId, count: 1 });
    const changes = await harness.waitForEvent('changes');
    expect(changes.lsn).to.equal('0/10');
    expect(await harness.storedLSN()).to.equal('0/10');
    expect(await harness.entity('todo', '1'), 'the built-in store is left alone').to.equal(undefined);

    await harness.send({ type: 'changes', changes: [update('1', 'replayed')], lsn: '0/10' });
    await harness.send({ type: 'changes', changes: [update('2', 'b')], lsn: '0/11' });
    const next = await harness.waitFor('the next apply', () => harness.eventsOf('apply')[1]);
    expect(next.batches.map((batch) => batch.lsn), 'the replay is not handed over').to.deep.equal(['0/11']);
    await harness.request({ type: 'applied', applyId: next.applyId, count: 1 });
    await harness.waitForState('lastLSN 0/11', (state) => state.lastLSN === '0/11');
  });

  it('a batch the page could not commit keeps the LSN before it, reports storage and resyncs from there', async () => {
    await harness.send(
      { type: 'changes', changes: [update('1', 'a')], lsn: '0/20' },
      { type: 'changes', changes: [update('2', 'b')], lsn: '0/21' },
    );
    const apply = await harness.waitForEvent('apply');
    const offered = apply.batches.length;
    // The first batch committed; the next was refused (or, alone, the only one was refused).
    const count = offered === 2 ? 1 : 0;
    await harness.request({ type: 'applied', applyId: apply.applyId, count, error: 'quota exceeded' });
    const error = await harness.waitForEvent('error', (event) => event.code === 'storage');
    expect(error.message).to.contain('quota exceeded');
    expect(await harness.storedLSN()).to.equal(count === 1 ? '0/20' : undefined);
    const resync = await harness.waitFor('a sync on the next connection', () =>
      harness.framesOf('sync').find(({ conn }) => conn === 2));
    expect(resync.frame.lastLSN).to.equal(count === 1 ? '0/20' : '0/0');
  });

  it('refuses an answer nobody asked for', async () => {
    let failure: unknown;
    await harness.request({ type: 'applied', applyId: 999, count: 1 }).catch((error: unknown) => { failure = error; });
    expect(String(failure)).to.contain('No batches wait for the answer 999');
    let malformed: unknown;
    await harness.request({ type: 'applied', applyId: 1, count: -1 }).catch((error: unknown) => { malformed = error; });
    expect(String(malformed)).to.contain('"count"');
  });
});
