import { expect } from '@open-wc/testing';
import type { StoredEntity } from '../src/db/schema.ts';
import { LiveQueries } from '../src/client/live-queries.ts';
import type { ObserveDelta } from '../src/client/live-query.ts';
import { PendingLayer, type SyncEntity } from '../src/client/pending-layer.ts';
import type { Change } from '../src/protocol/change.ts';

/** An in-memory local store whose reads can be held open, to test what happens during a read. */
function setup(records: StoredEntity[] = []) {
  const layer = new PendingLayer();
  const reported: { error: unknown; code: string }[] = [];
  const store = new Map(records.map((record) => [`${record.entityType}/${record.entityId}`, record]));
  let hold: Promise<void> | undefined;
  let reads = 0;
  const source = {
    layer,
    async load(entityType: string) {
      reads += 1;
      const snapshot = [...store.values()].filter((record) => record.entityType === entityType);
      if (hold) await hold;
      return snapshot;
    },
    report: (error: unknown, code: 'observer' | 'storage') => { reported.push({ error, code }); },
  };
  const live = new LiveQueries(source);
  return {
    layer, live, reported, store,
    get reads() { return reads; },
    holdReads() { let release!: () => void; hold = new Promise((resolve) => { release = resolve; }); return () => { hold = undefined; release(); }; },
  };
}

function note(id: string, data: unknown, lsn = '0/1'): StoredEntity {
  return { entityType: 'note', entityId: id, data, lsn };
}

function recorder() {
  const calls: { rows: readonly SyncEntity[]; delta: ObserveDelta }[] = [];
  let wake: (() => void) | undefined;
  return {
    calls,
    listener: (rows: readonly SyncEntity[], delta: ObserveDelta) => { calls.push({ rows, delta }); wake?.(); },
    async next(count = calls.length + 1) {
      while (calls.length < count) await new Promise<void>((resolve) => { wake = resolve; });
      return calls[count - 1]!;
    },
    ids(at = calls.length - 1) { return calls[at]!.rows.map((row) => row.entityId); },
  };
}

/** Lets every queued microtask run, so that a call that is due has happened. */
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

const update = (id: string, data: unknown, entityType = 'note'): Change => ({ type: 'update', entityType, entityId: id, data });

describe('live queries', () => {
  it('calls the listener once with the current result, in id order, as a frozen array of the records', async () => {
    const t = setup([note('b', { n: 2 }), note('a', { n: 1 }), { entityType: 'list', entityId: 'l', data: {} }]);
    const r = recorder();
    t.live.observe('note', r.listener, {});
    const first = await r.next();
    expect(r.ids()).to.deep.equal(['a', 'b']);
    expect(Object.isFrozen(first.rows)).to.equal(true);
    expect(first.delta.added.map((row) => row.entityId)).to.deep.equal(['a', 'b']);
    expect(first.rows[0]).to.deep.equal(note('a', { n: 1 }));
  });

  it('moves by deltas: one call per batch, unchanged rows keep their identity, nothing re-read', async () => {
    const t = setup([note('a', { n: 1 }), note('b', { n: 2 }), note('c', { n: 3 })]);
    const r = recorder();
    t.live.observe('note', r.listener, {});
    const first = await r.next();
    t.live.serverChanges([update('b', { n: 20 }), { type: 'delete', entityType: 'note', entityId: 'c' }, update('d', { n: 4 })], '0/5');
    const second = await r.next(2);
    expect(r.ids()).to.deep.equal(['a', 'b', 'd']);
    expect(second.rows[0]).to.equal(first.rows[0]);
    expect(second.delta.updated).to.deep.equal([{ entityType: 'note', entityId: 'b', data: { n: 20 }, lsn: '0/5' }]);
    expect(second.delta.removed).to.deep.equal([first.rows[2]]);
    expect(second.delta.added.map((row) => row.entityId)).to.deep.equal(['d']);
    expect(t.reads).to.equal(1);
  });

  it('calls nothing for a change to another entity type, or a change that leaves the result as it was', async () => {
    const t = setup([note('a', { n: 1 })]);
    const r = recorder();
    t.live.observe('note', r.listener, { filter: (entity) => (entity.data as { n: number }).n < 10 });
    await r.next();
    t.live.serverChanges([update('x', { n: 1 }, 'list')], '0/2');
    t.live.serverChanges([update('z', { n: 50 })], '0/3');
    await settle();
    expect(r.calls).to.have.length(1);
  });

  it('keeps filter, sort and limit: rows enter and leave the window', async () => {
    const t = setup([note('a', { n: 5 }), note('b', { n: 1 }), note('c', { n: 3 }), note('d', { n: 100 })]);
    const r = recorder();
    t.live.observe('note', r.listener, {
      filter: (entity) => (entity.data as { n: number }).n < 50,
      sort: (x, y) => (x.data as { n: number }).n - (y.data as { n: number }).n,
      limit: 2,
    });
    await r.next();
    expect(r.ids()).to.deep.equal(['b', 'c']);
    t.live.serverChanges([update('a', { n: 0 })], '0/2');
    const next = await r.next(2);
    expect(r.ids()).to.deep.equal(['a', 'b']);
    expect(next.delta.added.map((row) => row.entityId)).to.deep.equal(['a']);
    expect(next.delta.removed.map((row) => row.entityId)).to.deep.equal(['c']);
    t.live.serverChanges([update('d', { n: 2 })], '0/3'); // passes the filter now, but is third
    await settle();
    expect(r.calls).to.have.length(2);
  });

  it('shows local writes and rollbacks from the pending layer, marked pending', async () => {
    const t = setup([note('a', { title: 'A', done: false })]);
    const r = recorder();
    t.live.observe('note', r.listener, {});
    await r.next();
    const touched = t.layer.add({ id: 'op1', type: 'patch', payload: { entityType: 'note', entityId: 'a', data: { title: 'mine' } }, priority: 0, seq: 1 });
    t.live.layerChanged(touched);
    const written = await r.next(2);
    expect(written.rows[0]).to.deep.include({ data: { title: 'mine', done: false }, pending: true });
    // The server changes `done` under the pending patch: both show.
    t.live.serverChanges([update('a', { title: 'A', done: true })], '0/4');
    const both = await r.next(3);
    expect(both.rows[0]!.data).to.deep.equal({ title: 'mine', done: true });
    t.live.layerChanged(t.layer.remove(['op1']));
    const rolledBack = await r.next(4);
    expect(rolledBack.rows[0]).to.deep.equal(note('a', { title: 'A', done: true }, '0/4'));
  });

  it('a query started while the store is being written ends on the committed data', async () => {
    const t = setup([note('a', { v: 0 }), note('b', { v: 0 })]);
    const release = t.holdReads();
    const r = recorder();
    t.live.observe('note', r.listener, {});
    // Commits the read did not see, each in the store before its event: a change, a reset, then
    // the catch-up after it. A reset while reading makes the type read again.
    t.store.set('note/a', note('a', { v: 1 }, '0/2'));
    t.live.serverChanges([update('a', { v: 1 })], '0/2');
    t.store.clear();
    t.live.reset();
    t.store.set('note/c', note('c', { v: 2 }, '0/1'));
    t.live.serverChanges([update('c', { v: 2 })], '0/1');
    release();
    await r.next();
    await settle();
    expect(r.calls).to.have.length(1);
    expect(r.calls[0]!.rows).to.deep.equal([note('c', { v: 2 }, '0/1')]);
  });

  it('a reset removes every row but those the pending layer adds', async () => {
    const t = setup([note('a', {}), note('b', {})]);
    const r = recorder();
    t.live.observe('note', r.listener, {});
    await r.next();
    t.live.layerChanged(t.layer.add({ id: 'x', type: 'upsert', payload: { entityType: 'note', entityId: 'z', data: { mine: true } }, priority: 0, seq: 1 }));
    await r.next(2);
    t.live.reset();
    const after = await r.next(3);
    expect(r.ids()).to.deep.equal(['z']);
    expect(after.delta.removed.map((row) => row.entityId)).to.deep.equal(['a', 'b']);
  });

  it('a listener that throws is reported as an observer error and does not stop the others', async () => {
    const t = setup([note('a', {})]);
    const r = recorder();
    t.live.observe('note', () => { throw new Error('listener bug'); }, {});
    t.live.observe('note', r.listener, {});
    await r.next();
    t.live.serverChanges([update('b', {})], '0/2');
    await r.next(2);
    expect(t.reported.map(({ error, code }) => [code, (error as Error).message])).to.deep.equal([
      ['observer', 'listener bug'], ['observer', 'listener bug'],
    ]);
  });

  it('stops when unsubscribed, before or after its first result, and holds nothing afterwards', async () => {
    const t = setup([note('a', {})]);
    const r = recorder();
    const stopEarly = t.live.observe('note', r.listener, {});
    stopEarly();
    const stop = t.live.observe('note', r.listener, {});
    await r.next();
    stop();
    t.live.serverChanges([update('b', {})], '0/2');
    await settle();
    expect(r.calls).to.have.length(1);
    for (let i = 0; i < 1000; i += 1) t.live.observe(i % 2 ? 'note' : `type${i}`, () => {}, {})();
    expect([t.live.size, t.live.types]).to.deep.equal([0, 0]);
  });

  it('a type that cannot be read is reported as a storage error and its queries end', async () => {
    const t = setup();
    const failing = new LiveQueries({ layer: t.layer, load: () => Promise.reject(new Error('disk gone')), report: (error, code) => t.reported.push({ error, code }) });
    failing.observe('note', () => {}, {});
    await settle();
    expect(t.reported.map(({ code }) => code)).to.deep.equal(['storage']);
    expect([failing.size, failing.types]).to.deep.equal([0, 0]);
  });
});
