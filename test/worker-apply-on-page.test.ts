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

  it('a batch the page could not commit keeps the LSN at the last one it committed, reports storage and resyncs from there', async () => {
    await harness.send({ type: 'changes', changes: [update('1', 'a')], lsn: '0/20' });
    const first = await harness.waitForEvent('apply');
    // While the page works on the first, two more arrive (in the engine's socket once `send`
    // resolves): they are offered together next.
    await harness.send(
      { type: 'changes', changes: [update('2', 'b')], lsn: '0/21' },
      { type: 'changes', changes: [update('3', 'c')], lsn: '0/22' },
    );
    await harness.request({ type: 'applied', applyId: first.applyId, count: 1 });
    const second = await harness.waitFor('the second apply', () => harness.eventsOf('apply')[1]);
    expect(second.batches.map((batch) => batch.lsn)).to.deep.equal(['0/21', '0/22']);
    await harness.request({ type: 'applied', applyId: second.applyId, count: 1, error: 'quota exceeded' });
    const error = await harness.waitForEvent('error', (event) => event.code === 'storage');
    expect(error.message).to.contain('quota exceeded');
    expect(error.message).to.contain('0/22');
    expect(await harness.storedLSN(), 'the committed batch moved the LSN, the refused one did not').to.equal('0/21');
    const resync = await harness.waitFor('a sync on the next connection', () =>
      harness.framesOf('sync').find(({ conn }) => conn === 2));
    expect(resync.frame.lastLSN).to.equal('0/21');
  });

  it('an answer meant for another (dead) worker matches nothing here: the LSN waits for this worker\'s own answer', async () => {
    const other = await WorkerHarness.start({ config: FAST });
    try {
      await other.connect();
      await harness.send({ type: 'changes', changes: [update('1', 'a')], lsn: '0/30' });
      await other.send({ type: 'changes', changes: [update('1', 'a')], lsn: '0/30' });
      const mine = await harness.waitForEvent('apply');
      const theirs = await other.waitForEvent('apply');
      expect(theirs.applyId).to.not.equal(mine.applyId);
      let refused: unknown;
      await harness.request({ type: 'applied', applyId: theirs.applyId, count: 1 }).catch((error: unknown) => { refused = error; });
      expect(String(refused)).to.contain('No batches wait');
      expect(await harness.storedLSN(), 'the stale answer moved nothing').to.equal(undefined);
      await harness.request({ type: 'applied', applyId: mine.applyId, count: 1 });
      await harness.waitForState('lastLSN 0/30', (state) => state.lastLSN === '0/30');
    } finally {
      await other.stop();
    }
  });

  it('refuses an answer nobody asked for', async () => {
    let failure: unknown;
    await harness.request({ type: 'applied', applyId: 'stale/1', count: 1 }).catch((error: unknown) => { failure = error; });
    expect(String(failure)).to.contain('No batches wait for the answer "stale/1"');
    let malformed: unknown;
    await harness.request({ type: 'applied', applyId: 'x', count: -1 }).catch((error: unknown) => { malformed = error; });
    expect(String(malformed)).to.contain('"count"');
  });
});
