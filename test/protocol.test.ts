import { expect } from '@open-wc/testing';
import { compareLSN, formatLSN, isLSN, normalizeLSN, parseLSN } from '../src/protocol/lsn.ts';
import { parseServerFrame } from '../src/protocol/wire.ts';

describe('protocol: LSN', () => {
  it('parses X/Y as the high and low 32 bits of one 64-bit value', () => {
    expect(parseLSN('0/0')).to.equal(0n);
    expect(parseLSN('0/FF')).to.equal(255n);
    expect(parseLSN('1/0')).to.equal(1n << 32n);
    expect(parseLSN('16/B374D848')).to.equal((0x16n << 32n) | 0xb374d848n);
    expect(parseLSN('ffffffff/ffffffff')).to.equal(0xffff_ffff_ffff_ffffn);
    expect(parseLSN('0/16b3748')).to.equal(parseLSN('0/16B3748'));
  });

  it('rejects malformed LSNs', () => {
    const malformed: unknown[] = [
      '', '0', '0/', '/0', '0/0/0', ' 0/0', '0/0 ', '0x1/0', '-1/0', 'g/0', '0/g',
      '123456789/0', '0/123456789', '1.5/0', 0, 255n, null, undefined, {}, ['0/0'],
    ];
    for (const value of malformed) {
      expect(parseLSN(value), JSON.stringify(String(value))).to.equal(undefined);
      expect(isLSN(value)).to.equal(false);
    }
    expect(() => compareLSN('0/0', 'nope')).to.throw(TypeError);
    expect(() => normalizeLSN('x/y')).to.throw(TypeError);
  });

  it('orders numerically: 0/FF < 0/100 < 1/0, never as strings', () => {
    expect(compareLSN('0/FF', '0/100')).to.be.below(0);
    expect(compareLSN('0/100', '1/0')).to.be.below(0);
    expect(compareLSN('0/FFFFFFFF', '1/0')).to.be.below(0);
    expect(compareLSN('9/0', '10/0')).to.be.below(0);
    expect(compareLSN('1/0', '0/FF')).to.be.above(0);
    expect(compareLSN('0/ff', '0/FF')).to.equal(0);
    expect(compareLSN('00/0FF', '0/FF')).to.equal(0);
    expect(compareLSN(256n, '0/FF')).to.be.above(0);
  });

  it('formats in upper case without leading zeros and round-trips', () => {
    expect(formatLSN(0n)).to.equal('0/0');
    expect(formatLSN(255n)).to.equal('0/FF');
    expect(formatLSN(1n << 32n)).to.equal('1/0');
    for (const text of ['0/0', '0/100', '16/B374D848', 'FFFFFFFF/FFFFFFFF']) {
      expect(formatLSN(parseLSN(text)!)).to.equal(text);
    }
    expect(normalizeLSN('00/0abc')).to.equal('0/ABC');
    expect(() => formatLSN(-1n)).to.throw(RangeError);
    expect(() => formatLSN(1n << 64n)).to.throw(RangeError);
  });
});

describe('protocol: parseServerFrame', () => {
  const error = (frame: unknown): string => {
    const result = parseServerFrame(frame);
    if (result.ok) throw new Error(`expected an error for ${String(frame)}`);
    return result.error;
  };

  it('rejects frames that are not text, not JSON, not objects or without a string type', () => {
    expect(error(42)).to.contain('not text');
    expect(error(new ArrayBuffer(2))).to.contain('not text');
    expect(error('{oops')).to.contain('not valid JSON');
    expect(error('[]')).to.contain('not a JSON object');
    expect(error('null')).to.contain('not a JSON object');
    expect(error('"changes"')).to.contain('not a JSON object');
    expect(error('{}')).to.contain('type');
    expect(error('{"type":1}')).to.contain('type');
  });

  it('rejects known types with fields of the wrong shape', () => {
    expect(error(JSON.stringify({ type: 'changes', changes: [] }))).to.contain('LSN');
    expect(error(JSON.stringify({ type: 'changes', changes: [], lsn: '0/1/2' }))).to.contain('LSN');
    expect(error(JSON.stringify({ type: 'changes', changes: {}, lsn: '0/1' }))).to.contain('changes');
    expect(error(JSON.stringify({ type: 'sync_data', data: [], lsn: 5 }))).to.contain('LSN');
    expect(error(JSON.stringify({ type: 'sync_start', total: 1.5 }))).to.contain('total');
    expect(error(JSON.stringify({ type: 'entity_update', entityType: 't', entityId: '1' }))).to.contain('data');
    expect(error(JSON.stringify({ type: 'entity_delete', entityType: '', entityId: '1' }))).to.contain('entityType');
    expect(error(JSON.stringify({ type: 'operation_complete' }))).to.contain('id');
    expect(error(JSON.stringify({ type: 'operation_error', id: 'a' }))).to.contain('message');
    expect(error(JSON.stringify({ type: 'error' }))).to.contain('message');
  });

  it('keeps the valid changes of a batch in order and lists the invalid ones', () => {
    const result = parseServerFrame(JSON.stringify({
      type: 'changes',
      lsn: '0/1',
      changes: [
        { type: 'update', entityType: 't', entityId: '1', data: { a: 1 } },
        { type: 'update', entityType: 't', entityId: '2' },
        { type: 'delete', entityType: 't', entityId: '3', timestamp: 5 },
        { type: 'move', entityType: 't', entityId: '4' },
        { type: 'delete', entityId: '5' },
        { type: 'update', entityType: 't', entityId: '6', data: null },
      ],
    }));
    if (!result.ok || result.message.type !== 'changes') throw new Error('expected a changes message');
    expect(result.message.changes.map((change) => change.entityId)).to.deep.equal(['1', '3', '6']);
    expect(result.message.changes[1]).to.deep.equal({ type: 'delete', entityType: 't', entityId: '3', timestamp: 5 });
    expect(result.invalid.map((item) => item.index)).to.deep.equal([1, 3, 4]);
  });

  it('passes frames of unknown types through unchanged', () => {
    const result = parseServerFrame('{"type":"presence","who":"ann"}');
    expect(result).to.deep.equal({
      ok: true,
      message: { type: 'unknown', message: { type: 'presence', who: 'ann' } },
      invalid: [],
    });
  });
});
