import { expect } from '@open-wc/testing';
import { SyncError } from '../src/protocol/errors.ts';
import { toQueuedOperation } from '../src/client/operation-input.ts';

function rejection(input: unknown, maxBytes?: number): SyncError {
  try {
    toQueuedOperation(input, maxBytes);
  } catch (error) {
    expect(error).to.be.instanceOf(SyncError);
    expect((error as SyncError).code).to.equal('operation');
    return error as SyncError;
  }
  throw new Error('expected the operation to be refused');
}

describe('toQueuedOperation', () => {
  it('assigns a unique id, priority 0 and increasing sequence numbers', () => {
    const a = toQueuedOperation({ type: 'upsert', payload: { n: 1 } });
    const b = toQueuedOperation({ type: 'upsert', payload: { n: 2 } });
    expect(a.id).to.match(/^[0-9a-f-]{36}$/);
    expect(a.id).not.to.equal(b.id);
    expect(a.priority).to.equal(0);
    expect(b.seq).to.be.greaterThan(a.seq);
  });

  it('keeps a given id and priority', () => {
    const op = toQueuedOperation({ type: 'upsert', id: 'op-1', priority: 5, payload: {} });
    expect(op).to.include({ id: 'op-1', priority: 5, type: 'upsert' });
  });

  it('refuses a missing or non-string type', () => {
    expect(rejection({ payload: {} }).message).to.contain('"type"');
    expect(rejection({ type: 42 }).message).to.contain('"type"');
    expect(rejection(null).message).to.contain('object');
  });

  it('refuses a payload that cannot become JSON', () => {
    expect(rejection({ type: 'x', payload: { f: () => 1 } }).message).to.contain('function');
    expect(rejection({ type: 'x', payload: { n: 10n } }).message).to.contain('bigint');
    expect(rejection({ type: 'x', payload: { n: NaN } }).message).to.contain('NaN');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(rejection({ type: 'x', payload: cyclic }).message).to.contain('JSON');
  });

  it('refuses a payload that cannot be stored', () => {
    expect(rejection({ type: 'x', payload: { s: Symbol('x') } }).message).to.contain('symbol');
  });

  it('refuses a send_message payload that is not an object', () => {
    expect(rejection({ type: 'send_message', payload: 'hi' }).message).to.contain('send_message');
    expect(rejection({ type: 'send_message', payload: [1] }).message).to.contain('send_message');
  });

  it('refuses an operation over the size limit, counting UTF-8 bytes', () => {
    expect(toQueuedOperation({ type: 'x', payload: 'a'.repeat(800) }, 1000).type).to.equal('x');
    expect(rejection({ type: 'x', payload: 'é'.repeat(600) }, 1000).message).to.contain('over the limit of 1000');
  });
});
