import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Change } from '../../src/protocol/change.ts';
import { Ledger } from '../clients.ts';
import { checkApplications, compareEntities } from '../verify.ts';

const upsert = (id: string): Change => ({ type: 'update', entityType: 'item', entityId: id, data: { op: id } });
const context = (): string => 'no faults';

function ledgerOf(...operations: [id: string, type: 'upsert' | 'delete', target?: string][]): Ledger {
  const ledger = new Ledger();
  ledger.plan('c', operations.map(([id, type, target]) => ({ id, type, entityType: 'item', entityId: target ?? id, queuedAt: 0 })));
  return ledger;
}

describe('the chaos run\'s checks of what the log applied', () => {
  it('accepts an acknowledged operation applied once', () => {
    const ledger = ledgerOf(['a-1', 'upsert']);
    ledger.settle([{ id: 'a-1', state: 'acknowledged' }]);
    assert.deepEqual(checkApplications(ledger, new Set(['c']), [upsert('a-1')], 1, context).violations, []);
  });

  it('reports an acknowledged operation applied twice, or never', () => {
    const ledger = ledgerOf(['a-1', 'upsert'], ['a-2', 'upsert']);
    ledger.settle([{ id: 'a-1', state: 'acknowledged' }, { id: 'a-2', state: 'acknowledged' }]);
    const { violations } = checkApplications(ledger, new Set(['c']), [upsert('a-1'), upsert('a-1')], 7, context);
    assert.equal(violations.length, 2);
    assert.match(violations[0]!, /a-1 .* applied 2 times.*seed 7/);
    assert.match(violations[1]!, /a-2 .* applied 0 times/);
  });

  it('reports a rejected operation that was applied, and accepts one that was not', () => {
    const ledger = ledgerOf(['a-1', 'upsert'], ['a-2', 'upsert']);
    ledger.settle([
      { id: 'a-1', state: 'rejected', code: 'storage', message: 'aborted' },
      { id: 'a-2', state: 'rejected', code: 'storage', message: 'aborted' },
    ]);
    const { violations } = checkApplications(ledger, new Set(['c']), [upsert('a-1')], 1, context);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!, /a-1 .*rejected \(storage\).* applied 1 times/);
  });

  it('counts a delete by the deletes of its entity', () => {
    const ledger = ledgerOf(['a-1', 'upsert'], ['a-2', 'delete', 'a-1']);
    ledger.settle([{ id: 'a-1', state: 'acknowledged' }, { id: 'a-2', state: 'acknowledged' }]);
    const deleted: Change = { type: 'delete', entityType: 'item', entityId: 'a-1' };
    assert.deepEqual(checkApplications(ledger, new Set(['c']), [upsert('a-1'), deleted], 1, context).violations, []);
    assert.equal(checkApplications(ledger, new Set(['c']), [upsert('a-1'), deleted, deleted], 1, context).violations.length, 1);
  });

  it('allows an operation of a closed tab the outbox was not seen to hold at most once', () => {
    const ledger = ledgerOf(['a-1', 'upsert'], ['a-2', 'upsert'], ['a-3', 'upsert']);
    ledger.orphan(['a-1', 'a-2', 'a-3'], new Set(['a-3']));
    const log = [upsert('a-1'), upsert('a-2'), upsert('a-2'), upsert('a-3')];
    const { violations } = checkApplications(ledger, new Set(['c']), log, 1, context);
    assert.equal(violations.length, 1);
    assert.match(violations[0]!, /a-2 .*unknown.* applied 2 times/);
  });

  it('reports a promise that never settled, and an operation nobody queued', () => {
    const ledger = ledgerOf(['a-1', 'upsert']);
    const { violations } = checkApplications(ledger, new Set(['c']), [upsert('a-1'), upsert('z-9')], 1, context);
    assert.equal(violations.length, 2);
    assert.match(violations[0]!, /a-1 .*never settled/);
    assert.match(violations[1]!, /no page queued: z-9/);
  });
});

describe('the chaos run\'s comparison of a tab with the server', () => {
  const server = [{ entityType: 'item', entityId: '1', data: { a: 1, b: [1, 2] } }];

  it('finds none where they hold the same, whatever the key order', () => {
    assert.deepEqual(compareEntities('t', [{ entityType: 'item', entityId: '1', data: { b: [1, 2], a: 1 }, pending: false }], server), []);
  });

  it('names what differs, what is missing, what is extra and what is pending', () => {
    const problems = compareEntities('t', [
      { entityType: 'item', entityId: '1', data: { a: 2, b: [1, 2] }, pending: true },
      { entityType: 'item', entityId: '2', data: {}, pending: false },
    ], [...server, { entityType: 'shared', entityId: 's0', data: {} }]);
    assert.deepEqual(problems.map((p) => p.replace(/:.*/, '')), ['t', 't', 't', 't']);
    assert.equal(problems.length, 4);
    assert.match(problems.join('\n'), /item\/1 is still pending/);
    assert.match(problems.join('\n'), /item\/1 is \{"a":2/);
    assert.match(problems.join('\n'), /lacks shared\/s0/);
    assert.match(problems.join('\n'), /has item\/2, which the server does not/);
  });
});
