import { expect } from '@open-wc/testing';
import { PendingLayer } from '../src/client/pending-layer.ts';
import { effectsOf, parseEffect } from '../src/protocol/effects.ts';

const base = (entityId: string, data: unknown) => ({ entityType: 'note', entityId, data, lsn: '0/10', timestamp: 5 });

let seq = 0;
function op(id: string, type: string, payload: unknown, extra: { priority?: number; effects?: never[] | unknown[] } = {}) {
  return { id, type, payload, priority: extra.priority ?? 0, seq: ++seq, ...(extra.effects ? { effects: extra.effects as never } : {}) };
}

describe('pending layer', () => {
  it('shows the server value with every pending operation applied on top, in send order', () => {
    const layer = new PendingLayer();
    const server = base('n1', { title: 'server', done: false });
    expect(layer.overlay('note', 'n1', server)).to.equal(server);
    layer.add(op('a', 'patch', { entityType: 'note', entityId: 'n1', data: { title: 'mine' } }));
    layer.add(op('b', 'patch', { entityType: 'note', entityId: 'n1', data: { tags: ['x'] } }));
    expect(layer.overlay('note', 'n1', server)).to.deep.equal({
      entityType: 'note', entityId: 'n1', data: { title: 'mine', done: false, tags: ['x'] }, lsn: '0/10', timestamp: 5, pending: true,
    });
    // A server change underneath a pending patch keeps both.
    const changed = base('n1', { title: 'server', done: true });
    expect((layer.overlay('note', 'n1', changed)!.data)).to.deep.equal({ title: 'mine', done: true, tags: ['x'] });
  });

  it('orders by priority, then by queue order, whatever order they were added in', () => {
    const layer = new PendingLayer();
    const late = op('late', 'upsert', { entityType: 'note', entityId: 'n1', data: { v: 'late' } });
    const early = { ...op('early', 'upsert', { entityType: 'note', entityId: 'n1', data: { v: 'early' } }), seq: late.seq - 1 };
    layer.add(late);
    layer.add(early);
    expect(layer.overlay('note', 'n1', undefined)!.data).to.deep.equal({ v: 'late' });
    layer.add(op('urgent', 'upsert', { entityType: 'note', entityId: 'n1', data: { v: 'urgent' } }, { priority: 5 }));
    expect(layer.overlay('note', 'n1', undefined)!.data).to.deep.equal({ v: 'late' });
    layer.remove(['late', 'early']);
    expect(layer.overlay('note', 'n1', undefined)!.data).to.deep.equal({ v: 'urgent' });
  });

  it('rolls back one operation between two others and keeps the later write', () => {
    const layer = new PendingLayer();
    layer.add(op('1', 'patch', { entityType: 'note', entityId: 'n1', data: { a: 1 } }));
    layer.add(op('2', 'patch', { entityType: 'note', entityId: 'n1', data: { b: 2 } }));
    layer.add(op('3', 'patch', { entityType: 'note', entityId: 'n1', data: { c: 3 } }));
    expect(layer.remove(['2'])).to.deep.equal([{ entityType: 'note', entityId: 'n1' }]);
    expect(layer.overlay('note', 'n1', base('n1', {}))!.data).to.deep.equal({ a: 1, c: 3 });
  });

  it('a delete hides the entity, an upsert of an absent entity shows it, and acknowledged operations stop marking pending', () => {
    const layer = new PendingLayer();
    layer.add(op('d', 'delete', { entityType: 'note', entityId: 'n1' }));
    expect(layer.overlay('note', 'n1', base('n1', { x: 1 }))).to.equal(undefined);
    layer.add(op('u', 'upsert', { entityType: 'note', entityId: 'n2', data: { y: 2 } }));
    expect(layer.overlay('note', 'n2', undefined)).to.deep.equal({ entityType: 'note', entityId: 'n2', data: { y: 2 }, pending: true });
    expect([...layer.touchedIds('note')].sort()).to.deep.equal(['n1', 'n2']);
    layer.acknowledge('u');
    expect(layer.overlay('note', 'n2', undefined)).to.deep.equal({ entityType: 'note', entityId: 'n2', data: { y: 2 } });
  });

  it('applies a custom operation\'s declared effects, and none for a custom operation without them', () => {
    const layer = new PendingLayer();
    const effects = [
      { type: 'upsert', entityType: 'list', entityId: 'l1', data: { name: 'groceries' } },
      { type: 'patch', entityType: 'note', entityId: 'n1', data: { list: 'l1' } },
    ];
    expect(layer.add(op('c', 'move_to_list', { anything: true }, { effects }))).to.deep.equal([
      { entityType: 'list', entityId: 'l1' }, { entityType: 'note', entityId: 'n1' },
    ]);
    expect(layer.overlay('list', 'l1', undefined)!.data).to.deep.equal({ name: 'groceries' });
    expect(layer.overlay('note', 'n1', base('n1', { t: 1 }))!.data).to.deep.equal({ t: 1, list: 'l1' });
    expect(layer.add(op('plain', 'rename_everything', { to: 'x' }))).to.deep.equal([]);
    expect(layer.size).to.equal(2);
    expect(layer.clear().ids.sort()).to.deep.equal(['c', 'plain']);
    expect([...layer.touchedIds('note')]).to.deep.equal([]);
  });
});

describe('operation effects', () => {
  it('derives the one effect of upsert, patch and delete from their payload', () => {
    expect(effectsOf({ type: 'delete', payload: { entityType: 't', entityId: 'i' } })).to.deep.equal([{ type: 'delete', entityType: 't', entityId: 'i' }]);
    expect(effectsOf({ type: 'patch', payload: { entityType: 't', entityId: 'i', data: { a: null } } })).to.deep.equal([
      { type: 'patch', entityType: 't', entityId: 'i', data: { a: null } },
    ]);
    expect(effectsOf({ type: 'upsert', payload: { entityType: 't', entityId: 'i' } })).to.deep.equal([]);
  });

  it('says what is wrong with an effect', () => {
    expect(parseEffect('patch', { entityType: 't', entityId: 'i', data: [1] })).to.match(/patch needs data that is an object/);
    expect(parseEffect('patch', { entityType: 't', entityId: 'i', data: 'x' })).to.match(/merge patch/);
    expect(parseEffect('upsert', { entityType: 't', entityId: 'i' })).to.match(/upsert needs data/);
    expect(parseEffect('delete', { entityType: '', entityId: 'i' })).to.match(/entityType/);
    expect(parseEffect('delete', { entityType: 't' })).to.match(/entityId/);
    expect(parseEffect('rename', { entityType: 't', entityId: 'i' })).to.match(/one of upsert, patch, delete/);
  });
});
