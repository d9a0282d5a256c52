import { expect } from '@open-wc/testing';
import {
  errorMessage,
  InvalidStateError,
  OperationRejectedError,
  parseSerializedError,
  RequestError,
  reviveError,
  serializeError,
  StorageError,
  SyncError,
} from '../src/protocol/errors.ts';

/** What crossing a boundary does to an error: structured clone of its serialised form, revived. */
function across(error: unknown): Error {
  return reviveError(structuredClone(serializeError(error)));
}

describe('errors across the worker and tab boundaries', () => {
  it('come back as their own class with their message', () => {
    const originals = [
      new StorageError('disk full'),
      new InvalidStateError('Not connected'),
      new RequestError('"url" must be a string'),
    ];
    for (const original of originals) {
      const revived = across(original);
      expect(revived).to.be.an.instanceOf(original.constructor as typeof Error);
      expect(revived.name).to.equal(original.name);
      expect(revived.message).to.equal(original.message);
    }
  });

  it('keep a SyncError\'s code and an OperationRejectedError\'s operation id', () => {
    const sync = across(new SyncError('closed', 'No tab holding the connection answered'));
    expect(sync).to.be.an.instanceOf(SyncError);
    expect((sync as SyncError).code).to.equal('closed');
    const rejected = across(new OperationRejectedError('op-1', 'unknown type'));
    expect(rejected).to.be.an.instanceOf(OperationRejectedError);
    expect((rejected as OperationRejectedError).operationId).to.equal('op-1');
  });

  it('bring a DOMException back as an Error with its name, and anything thrown as an Error', () => {
    const dom = across(new DOMException('Key already exists', 'ConstraintError'));
    expect(dom).to.be.an.instanceOf(Error);
    expect(dom.name).to.equal('ConstraintError');
    expect(dom.message).to.equal('Key already exists');
    const thrown = across('a string');
    expect(thrown.name).to.equal('Error');
    expect(thrown.message).to.equal('a string');
    expect(errorMessage(42)).to.equal('42');
  });

  it('treat a SyncError that lost its code as a worker error', () => {
    const revived = reviveError({ name: 'SyncError', message: 'gone' });
    expect((revived as SyncError).code).to.equal('worker');
  });

  it('parse only a well-formed serialised error from untrusted data', () => {
    expect(parseSerializedError({ name: 'SyncError', message: 'm', code: 'storage' })).to.deep.equal({ name: 'SyncError', message: 'm', code: 'storage' });
    for (const bad of [null, 'text', {}, { name: 'E' }, { name: 1, message: 'm' }, { name: 'E', message: 'm', code: 'nope' }, { name: 'E', message: 'm', operationId: 3 }]) {
      expect(parseSerializedError(bad), JSON.stringify(bad)).to.equal(undefined);
    }
  });
});
