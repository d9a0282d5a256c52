import { expect } from '@open-wc/testing';
import { PendingOperations } from '../src/client/pending-operations.ts';
import { SyncError } from '../src/protocol/errors.ts';
import type { QueuedOperation } from '../src/protocol/state.ts';

/** What a promise settles with: its error (`undefined` when it resolved). */
const operation = (id: string): QueuedOperation => ({ id, type: 'upsert', payload: {}, priority: 0, seq: 0, queuedAt: 0 });
const rejection = (promise: Promise<unknown>): Promise<SyncError | undefined> => promise.then(() => undefined, (error: SyncError) => error);

describe('the pending operations of one client', () => {
  it('refuses an id already reserved, even before it is stored', () => {
    const pending = new PendingOperations();
    void pending.reserve('a');
    expect(() => pending.reserve('a')).to.throw(SyncError, /already queued/);
  });

  it('settles an answer once, and settled() waits for every operation reserved before it', async () => {
    const pending = new PendingOperations();
    const a = pending.reserve('a');
    const b = pending.reserve('b');
    let settled = false;
    const all = pending.settled().then(() => { settled = true; });
    pending.stored(operation('a'));
    pending.resolve('a', { id: 'a', lsn: '0/1' });
    pending.resolve('a', { id: 'a', lsn: '0/2' });
    expect(await a).to.deep.equal({ id: 'a', lsn: '0/1' });
    expect(settled).to.equal(false);
    pending.cancel(['b']);
    expect((await rejection(b))?.message).to.equal('Operation cancelled due to client cleanup');
    await all;
  });

  it('cancels an operation whose record a clear removed while its promise was not yet marked stored', async () => {
    const pending = new PendingOperations();
    const a = pending.reserve('a');
    pending.cancel(['a']); // another tab's clear, heard before this tab's write resolved
    expect((await rejection(a))?.code).to.equal('operation');
    pending.stored(operation('a')); // the write resolves afterwards: nothing left to settle
    expect(() => pending.reserve('a'), 'the id is free again').to.not.throw();
  });

  it('rejects the reservation when storing fails, and frees its id', async () => {
    const pending = new PendingOperations();
    const a = pending.reserve('a');
    const failure = new SyncError('storage', 'disk full');
    expect(await rejection(pending.store('a', async () => { throw failure; }))).to.equal(failure);
    expect(await rejection(a)).to.equal(failure);
    expect(() => pending.reserve('a')).to.not.throw();
  });

  it('hands stored operations over to a successor, and keeps the ones still storing', async () => {
    const first = new PendingOperations();
    const next = new PendingOperations();
    const stored = first.reserve('stored');
    first.stored(operation('stored'));
    void first.reserve('storing');
    first.handOver(next);
    next.resolve('stored', { id: 'stored' });
    expect(await stored).to.deep.equal({ id: 'stored' });
    expect(() => first.reserve('storing')).to.throw(SyncError);
    expect(() => next.reserve('storing')).to.not.throw();
  });

  it('on close rejects the stored ones as still queued, and a write finishing later fails the same way', async () => {
    const pending = new PendingOperations();
    const stored = pending.reserve('stored');
    pending.stored(operation('stored'));
    const late = pending.reserve('late');
    pending.close();
    expect((await rejection(stored))?.code).to.equal('closed');
    const storing = pending.store('late', async () => pending.stored(operation('late')));
    expect((await rejection(storing))?.code).to.equal('closed');
    expect((await rejection(late))?.message).to.match(/stays queued/);
  });
});
