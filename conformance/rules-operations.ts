import type { Change } from '../src/protocol/change.ts';
import { compareLSN } from '../src/protocol/lsn.ts';
import type { Kit, KitOperation, Written } from './kit.ts';
import { canonical, fail, pass, skip, warn, type Rule } from './rule.ts';
import type { Session } from './session.ts';

export const write: Rule = {
  id: 'write',
  title: "an upsert is acknowledged with operation_complete, and its change (an update holding the upsert's data) reaches the writer",
  section: '§6 The standard types',
  level: 'MUST',
  needs: 'synced',
  async run(kit) {
    const session = await kit.live();
    const data = { text: 'conformance', n: 1, nested: { list: [1, 'two', null], flag: true } };
    const written = await kit.write(session, kit.upsert('write', data));
    if (written.answer.type === 'operation_error') {
      return skip(`the server refused the kit's upsert${written.answer.retryable === true ? ' for now (retryable)' : ''} ("${written.answer.message}"), so no rule that writes was checked: ` +
        `give the kit a token that may write entities of type ${kit.entityType}`);
    }
    const change = written.batch!.changes.find((c) => c.entityType === kit.entityType && c.entityId === 'write')!;
    if (change.type !== 'update') return fail(`the upsert's change is a ${change.type}, not an update`);
    if (canonical(change.data) !== canonical(data)) return fail(`the upsert's change holds ${canonical(change.data)}, not the upsert's data ${canonical(data)}`);
    kit.writable = true;
    return pass();
  },
};

export const ackLsn: Rule = {
  id: 'ack-lsn',
  title: "operation_complete.lsn is at or after its change's record and not past the batch that carries it (and SHOULD follow that batch)",
  section: '§6 Answers',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const early: string[] = [];
    const without: string[] = [];
    for (const name of ['ack-1', 'ack-2', 'ack-3']) {
      const written = await kit.applied(session, kit.upsert(name, { name }));
      const { answer, batch } = written;
      if (answer.type !== 'operation_complete') continue;
      if (answer.lsn === undefined) {
        without.push(answer.id);
      } else {
        if (compareLSN(answer.lsn, batch.after) <= 0) {
          return fail(`operation ${answer.id} was acknowledged at ${answer.lsn}, but its change came in the batch at ${batch.lsn} after ${batch.after}: a client at ${answer.lsn} would take the write as stored without having it`);
        }
        if (batch.lsn !== undefined && compareLSN(answer.lsn, batch.lsn) > 0) {
          return fail(`operation ${answer.id} was acknowledged at ${answer.lsn}, past the batch at ${batch.lsn} that carries its change: the client would wait for a position that may not come`);
        }
      }
      if (written.answerSeq < written.batchSeq!) early.push(answer.id);
    }
    if (without.length > 0) return warn(`acknowledged without lsn (${without.join(', ')}) although the change was sent to the writer: the client may show the old value until the change arrives`);
    if (early.length > 0) return warn(`operation_complete came before the batch carrying the change (${early.join(', ')}); a server SHOULD send it after`);
    return pass();
  },
};

/** What a change looks like in a message: `update {"v":1}` or `delete`. */
function describe(change: Change): string {
  return change.type === 'update' ? `update ${canonical(change.data)}` : 'delete';
}

/** Takes batches off `session` until `count` changes to `entityId` have come; returns them in order. */
async function changesTo(kit: Kit, session: Session, entityId: string, count: number): Promise<Change[]> {
  const changes: Change[] = [];
  while (changes.length < count) {
    const { batch } = await session.takeChangeOf(kit.entityType, entityId, `change ${changes.length + 1} of ${count} to ${entityId}`);
    changes.push(...batch.changes.filter((change) => change.entityType === kit.entityType && change.entityId === entityId));
  }
  return changes;
}

export const operationOrder: Rule = {
  id: 'operation-order',
  title: "one connection's operations are applied in the order they were sent, each with a higher LSN",
  section: '§6 Order',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const operations = [
      kit.upsert('order', { v: 1 }), kit.upsert('order', { v: 2 }), kit.delete('order'), kit.upsert('order', { v: 3 }), kit.patch('order', { w: 4 }),
    ];
    for (const operation of operations) kit.send(session, operation);
    const lsns = [];
    for (const operation of operations) {
      const { answer } = await kit.answer(session, operation.id);
      if (answer.type === 'operation_error') return fail(`operation ${operation.id} (${operation.type}) was refused: ${answer.message}`);
      if (answer.lsn !== undefined) lsns.push(answer.lsn);
    }
    for (let i = 1; i < lsns.length; i += 1) {
      if (compareLSN(lsns[i]!, lsns[i - 1]!) <= 0) return fail(`sent one after another, the operations were acknowledged at ${lsns.join(', ')}: not in the order sent`);
    }
    const got = (await changesTo(kit, session, 'order', operations.length)).map(describe);
    const expected = ['update {"v":1}', 'update {"v":2}', 'delete', 'update {"v":3}', 'update {"v":3,"w":4}'];
    if (got.join(' | ') !== expected.join(' | ')) return fail(`upsert, upsert, delete, upsert, patch, sent in a row, made [${got.join(' | ')}]; expected [${expected.join(' | ')}]`);
    return pass();
  },
};

export const appliedOnce: Rule = {
  id: 'applied-once',
  title: 'an operation id is applied once: a repeat, on the same or another connection or while the first is under way, is answered as the first, same lsn',
  section: '§6 Ids and repeats',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const first = await kit.applied(session, kit.upsert('once-x', { n: 1 }));
    const firstLsn = first.answer.type === 'operation_complete' ? first.answer.lsn : undefined;
    const sameAnswer = (written: Written, where: string) => {
      if (written.answer.type === 'operation_error') return `the repeat of ${written.operation.id} ${where} was refused: ${written.answer.message}`;
      if (written.answer.lsn !== firstLsn) return `the repeat of ${written.operation.id} ${where} was answered with lsn ${written.answer.lsn ?? '(none)'}, the first with ${firstLsn ?? '(none)'}`;
      return undefined;
    };
    const repeat = async (on: Session): Promise<Written> => {
      kit.send(on, first.operation);
      const { answer, seq } = await kit.answer(on, first.operation.id);
      return { operation: first.operation, answer, answerSeq: seq };
    };
    const problem = sameAnswer(await repeat(session), 'on the same connection') ?? sameAnswer(await repeat(await kit.live()), 'on another connection');
    if (problem) return fail(problem);
    // The same id twice in a row: the second arrives while the first is being applied.
    const twice = kit.upsert('once-y', { n: 2 });
    kit.send(session, twice);
    kit.send(session, twice);
    const answers = [(await kit.answer(session, twice.id)).answer, (await kit.answer(session, twice.id)).answer];
    const [once, again] = answers;
    if (once!.type !== 'operation_complete' || again!.type !== 'operation_complete' || once!.lsn !== again!.lsn) {
      return fail(`an operation sent twice in a row was answered ${answers.map((answer) => `${answer.type}${answer.type === 'operation_complete' ? ` at ${answer.lsn ?? '(no lsn)'}` : ''}`).join(' and ')}: both must be operation_complete with the same lsn`);
    }
    // What the log holds: a catch-up from before the first write.
    const reader = await kit.connect();
    const answer = await reader.sync(first.batch.after);
    const count = (entityId: string) => answer.batches.flatMap((batch) => batch.changes).filter((change) => change.entityType === kit.entityType && change.entityId === entityId).length;
    if (count('once-x') !== 1) return fail(`the log holds ${count('once-x')} changes for operation ${first.operation.id}, sent three times: it must be applied once`);
    if (count('once-y') !== 1) return fail(`the log holds ${count('once-y')} changes for operation ${twice.id}, sent twice in a row: it must be applied once`);
    return pass();
  },
};

export const patchMerge: Rule = {
  id: 'patch-merge',
  title: "a patch is a JSON merge patch (RFC 7386) on the entity's value: null removes, objects merge, patches from two connections both survive",
  section: '§6 The standard types',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const one = await kit.live();
    const two = await kit.live();
    const steps: [Session, KitOperation, unknown][] = [
      [one, kit.upsert('merge', { a: 1, keep: { x: 1, y: 2 }, drop: true }), { a: 1, keep: { x: 1, y: 2 }, drop: true }],
      [one, kit.patch('merge', { b: 2, keep: { y: null, z: 3 }, drop: null }), { a: 1, b: 2, keep: { x: 1, z: 3 } }],
      [two, kit.patch('merge', { c: [1, 2] }), { a: 1, b: 2, c: [1, 2], keep: { x: 1, z: 3 } }],
      [one, kit.patch('missing', { p: 1, q: null }), { p: 1 }],
      [one, kit.upsert('scalar', 5), 5],
      [one, kit.patch('scalar', { k: 1 }), { k: 1 }],
    ];
    for (const [session, operation, expected] of steps) {
      const written = await kit.applied(session, operation);
      const { entityId } = operation.payload as { entityId: string };
      const change = written.batch.changes.filter((c) => c.entityType === kit.entityType && c.entityId === entityId).at(-1)!;
      const value = change.type === 'update' ? canonical(change.data) : 'a delete';
      if (value !== canonical(expected)) {
        return fail(`${operation.type} ${canonical((operation.payload as { data: unknown }).data)} on ${entityId} made ${value}; expected ${canonical(expected)}`);
      }
    }
    return pass();
  },
};

/**
 * Sends each operation and requires a final operation_error for it, and no change to `entityIds`
 * before a later write of the kit's has come back.
 */
async function refusedFinally(kit: Kit, session: Session, operations: readonly KitOperation[], entityIds: readonly string[], what: (operation: KitOperation) => string): Promise<string | undefined> {
  for (const operation of operations) {
    kit.send(session, operation);
    const { answer } = await kit.answer(session, operation.id);
    if (answer.type === 'operation_complete') return `${what(operation)} was applied (operation_complete${answer.lsn ? ` at ${answer.lsn}` : ''}); it must get a final operation_error`;
    if (answer.retryable === true) return `${what(operation)} got operation_error with retryable: true; a final operation_error has no retryable`;
  }
  // Everything stored before the barrier write has reached the connection when it comes back.
  await kit.applied(session, kit.upsert('barrier', { at: operations.map((operation) => operation.id) }));
  const changed = session.drain().flatMap(({ batch }) => batch?.changes ?? []).filter((change) => change.entityType === kit.entityType && entityIds.includes(change.entityId));
  if (changed.length > 0) return `a refused operation changed ${changed.map((change) => change.entityId).join(', ')} all the same`;
  return undefined;
}

export const patchNonObject: Rule = {
  id: 'patch-non-object',
  title: 'a patch whose data is not a JSON object is refused with a final operation_error, changing nothing',
  section: '§6 The standard types',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    await kit.applied(session, kit.upsert('patched', { x: 1 }));
    const patches = [[1, 2], 'text', 5, null].map((data) => kit.patch('patched', data));
    const problem = await refusedFinally(kit, session, patches, ['patched'], (operation) => `a patch with data ${canonical((operation.payload as { data: unknown }).data)}`);
    return problem ? fail(problem) : pass();
  },
};

export const unknownType: Rule = {
  id: 'unknown-type',
  title: 'an operation of a type the server does not know is refused with a final operation_error, changing nothing',
  section: '§6 Other types',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const operation = { id: kit.id('unknown'), type: `conformance.no-such-type-${kit.id('type')}`, payload: { entityType: kit.entityType, entityId: 'unknown', data: { x: 1 } } };
    const problem = await refusedFinally(kit, session, [operation], ['unknown'], () => `an operation of type ${operation.type}`);
    return problem ? fail(problem) : pass();
  },
};

export const invalidPayload: Rule = {
  id: 'invalid-payload',
  title: 'an upsert, patch or delete with an invalid payload is refused with a final operation_error, changing nothing',
  section: '§6 The standard types, §9 Malformed input',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const type = kit.entityType;
    const operations: KitOperation[] = [
      { id: kit.id('invalid'), type: 'upsert', payload: { entityType: type, entityId: '', data: { x: 1 } } },
      { id: kit.id('invalid'), type: 'upsert', payload: { entityType: type, entityId: 'no-data' } },
      { id: kit.id('invalid'), type: 'upsert', payload: { entityId: 'no-type', data: { x: 1 } } },
      { id: kit.id('invalid'), type: 'upsert', payload: 'not an object' },
      { id: kit.id('invalid'), type: 'upsert' },
      { id: kit.id('invalid'), type: 'delete', payload: { entityType: type, entityId: 42 } },
      { id: kit.id('invalid'), type: 'patch', payload: { entityType: '', entityId: 'no-type', data: { x: 1 } } },
    ];
    const problem = await refusedFinally(kit, session, operations, ['', 'no-data', 'no-type'], (operation) => `${operation.type} with payload ${canonical(operation.payload) ?? '(none)'}`);
    return problem ? fail(problem) : pass();
  },
};
