import { expect } from '@open-wc/testing';
import { applyMergePatch } from '../src/protocol/merge-patch.ts';

describe('protocol: JSON merge patch (RFC 7386)', () => {
  it('gives the results of the RFC 7386 examples', () => {
    const cases: [unknown, unknown, unknown][] = [
      [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
      [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
      [{ a: 'b' }, { a: null }, {}],
      [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
      [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
      [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
      [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
      [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
      [['a', 'b'], ['c', 'd'], ['c', 'd']],
      [{ a: 'b' }, ['c'], ['c']],
      [{ a: 'foo' }, null, null],
      [{ a: 'foo' }, 'bar', 'bar'],
      [{ e: null }, { a: 1 }, { e: null, a: 1 }],
      [[1, 2], { a: 'b', c: null }, { a: 'b' }],
      [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
    ];
    for (const [target, patch, expected] of cases) {
      expect(applyMergePatch(target, patch), JSON.stringify([target, patch])).to.deep.equal(expected);
    }
  });

  it('treats an absent entity as {} and changes neither argument', () => {
    const target = { title: 'a', nested: { x: 1, y: 2 }, untouched: { deep: true } };
    const patch = { nested: { y: null, z: 3 } };
    const before = JSON.stringify([target, patch]);
    const result = applyMergePatch(target, patch) as typeof target;
    expect(result).to.deep.equal({ title: 'a', nested: { x: 1, z: 3 }, untouched: { deep: true } });
    expect(JSON.stringify([target, patch])).to.equal(before);
    expect(result.untouched).to.equal(target.untouched);
    expect(applyMergePatch(undefined, { done: true })).to.deep.equal({ done: true });
  });

  it('keeps a member named __proto__ a plain member instead of changing the prototype', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown;
    const result = applyMergePatch({}, patch) as Record<string, unknown>;
    expect(Object.getPrototypeOf(result)).to.equal(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.keys(result)).to.deep.equal(['__proto__', 'a']);
    expect(JSON.parse(JSON.stringify(result))).to.deep.equal(patch);
  });

  it('is idempotent: applying a patch twice gives what applying it once gives', () => {
    const target = { a: { b: 1, c: [1, 2] }, d: 'x' };
    const patch = { a: { b: null, c: [3] }, e: { f: 'g' } };
    const once = applyMergePatch(target, patch);
    expect(applyMergePatch(once, patch)).to.deep.equal(once);
  });
});
