import { randomBytes } from 'node:crypto';
import { compareLSN, parseLSN, type LSN } from '../src/protocol/lsn.ts';
import { SetupError, type Kit, type Written } from './kit.ts';
import { fail, pass, skip, warn, type Rule, type Verdict } from './rule.ts';
import { WaitError, type Batch, type Session, type SyncAnswer } from './session.ts';

/** Ahead of any log. */
const AHEAD = 'FFFFFFFF/FFFFFFFF';
/** The most one write of the boundary rule holds, well under the 1 MiB a server must take. */
const BOUNDARY_CHUNK = 60_000;

export const catchUp: Rule = {
  id: 'catch-up',
  title: 'a sync from 0/0 is answered with the log in batches of increasing LSN, then sync_complete at or after the last of them',
  section: '§7 Catch-up, then live',
  level: 'MUST',
  async run(kit) {
    const session = await kit.connect();
    let answer: SyncAnswer;
    try {
      answer = await session.sync('0/0');
    } catch (error) {
      const closed = session.closed;
      if (closed && closed.code >= 4000 && closed.code <= 4099) {
        throw new SetupError(`the server refused the kit's sync, closing with ${closed.code} "${closed.reason}"${kit.options.token === undefined ? ': give it a token with --token' : ': is the token right?'}`);
      }
      if (error instanceof WaitError) {
        return fail(`${error.message}: the kit needs sync_complete (a SHOULD of §7) to know when a catch-up is over, so it checked nothing else`);
      }
      throw error;
    }
    if (answer.outcome !== 'complete') return fail(`a sync from 0/0 was answered with ${answer.outcome}${answer.message ? ` ("${answer.message}")` : ''}`);
    const lsns = answer.batches.flatMap((batch) => (batch.lsn === undefined ? [] : [batch.lsn]));
    for (let i = 1; i < lsns.length; i += 1) {
      if (compareLSN(lsns[i]!, lsns[i - 1]!) <= 0) return fail(`the catch-up sent a batch at ${lsns[i]} after one at ${lsns[i - 1]}`);
    }
    const last = lsns.at(-1);
    if (answer.lsn !== undefined && last !== undefined && compareLSN(answer.lsn, last) < 0) {
      return fail(`sync_complete.lsn ${answer.lsn} is below the batch at ${last} it follows: it must be the position the catch-up covers`);
    }
    kit.head = answer.reached;
    kit.synced = true;
    return pass(`${answer.batches.length} batches, then sync_complete${answer.lsn === undefined ? ' (without lsn)' : ` at ${answer.lsn}`}`);
  },
};

/**
 * Writes three entities one after another on `session`; returns their ids and the LSNs of the
 * batches that carried them, once all three have arrived.
 */
async function writeThree(kit: Kit, session: Session, prefix: string): Promise<{ ids: string[]; lsns: LSN[] }> {
  const ids = ['a', 'b', 'c'].map((name) => `${prefix}-${name}`);
  const lsns: LSN[] = [];
  for (const id of ids) {
    const { batch } = await kit.applied(session, kit.upsert(id, { id }));
    if (batch.lsn === undefined) throw new Error(`the batch carrying the kit's write to ${id} has no lsn: a client could not resume after it`);
    lsns.push(batch.lsn);
  }
  return { ids, lsns };
}

/**
 * What is wrong with a catch-up from `from` that should bring the changes to `expected`, once
 * each and in this order, and none to `before` (written at or before `from`); undefined if nothing.
 */
function replayProblem(kit: Kit, answer: SyncAnswer, from: LSN, expected: readonly string[], before: readonly string[]): string | undefined {
  if (answer.outcome !== 'complete') return `a sync from ${from} was answered with ${answer.outcome}${answer.message ? ` ("${answer.message}")` : ''}`;
  const early = answer.batches.find((batch) => batch.lsn !== undefined && compareLSN(batch.lsn, from) <= 0);
  if (early) return `the catch-up from ${from} sent a batch at ${early.lsn}, at or before lastLSN: records the client already has`;
  const ours = answer.batches.flatMap((batch) => batch.changes).filter((change) => change.entityType === kit.entityType).map((change) => change.entityId);
  const resent = ours.filter((id) => before.includes(id));
  if (resent.length > 0) return `the catch-up from ${from} sent again the change to ${resent.join(', ')}, written at or before lastLSN`;
  const relevant = ours.filter((id) => expected.includes(id));
  if (relevant.join() !== expected.join()) {
    return `the catch-up from ${from} should bring the changes to ${expected.join(', ')} once each, in that order; it brought [${relevant.join(', ')}]`;
  }
  return undefined;
}

export const replay: Rule = {
  id: 'replay',
  title: 'a sync from lastLSN gets every record after it once, in LSN order, and nothing at or before it',
  section: '§7 Catch-up, then live',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const { ids, lsns: [from, , last] } = await writeThree(kit, await kit.live(), 'replay');
    const answer = await (await kit.connect()).sync(from!);
    const problem = replayProblem(kit, answer, from!, ids.slice(1), ids.slice(0, 1));
    if (problem) return fail(problem);
    if (answer.lsn !== undefined && compareLSN(answer.lsn, last!) < 0) {
      return fail(`sync_complete.lsn ${answer.lsn} is below the batch at ${last} that the catch-up brought`);
    }
    return pass();
  },
};

export const secondSync: Rule = {
  id: 'second-sync',
  title: 'a new sync on a live connection replaces the one before and is served from its own lastLSN',
  section: '§3 Connecting (4)',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const { ids, lsns: [from, , to] } = await writeThree(kit, session, 'resync');
    const back = replayProblem(kit, await session.sync(from!), from!, ids.slice(1), ids.slice(0, 1));
    if (back) return fail(`on a live connection: ${back}`);
    const forward = replayProblem(kit, await session.sync(to!), to!, [], ids);
    if (forward) return fail(`on a live connection: ${forward}`);
    return pass();
  },
};

export const resetAhead: Rule = {
  id: 'reset-ahead',
  title: 'a client whose lastLSN is ahead of the log is sent reset, then no batch until it syncs again',
  section: '§7 reset',
  level: 'MUST',
  needs: 'synced',
  async run(kit) {
    const ahead = await kit.connect();
    const answer = await ahead.sync(AHEAD);
    if (answer.outcome === 'complete') {
      return fail(`a sync from ${AHEAD}, ahead of any log, was served (sync_complete): that client would skip every later batch as already applied`);
    }
    if (answer.outcome === 'sync_error') {
      return warn(`a sync from ${AHEAD} was answered with sync_error ("${answer.message}"), as a 1.0 server does: a 1.1 server sends reset, so that the client starts over`);
    }
    if (answer.batches.length > 0) return fail(`batches came before the reset for a sync from ${AHEAD}`);
    if (!kit.writable) return pass(`reset (the kit could not write, so it did not check what follows)`);
    const writer = await kit.live();
    const written = await kit.applied(writer, kit.upsert('after-reset', { n: 1 }));
    const meanwhile = await ahead.ping('a pong on the connection that was sent reset');
    const batch = meanwhile.find((received) => received.batch);
    if (batch) return fail(`after reset, with no new sync, the server sent a batch at ${batch.batch!.lsn ?? '(no lsn)'}`);
    const again = await ahead.sync(written.batch.after);
    const served = again.outcome === 'complete' && again.batches.some((b) => b.changes.some((change) => change.entityType === kit.entityType && change.entityId === 'after-reset'));
    if (!served) return fail(`after reset, a new sync from ${written.batch.after} was not served the write that followed it (${again.outcome})`);
    return pass(answer.message === undefined ? undefined : `reset: "${answer.message}"`);
  },
};

/** The high 32 bits of an LSN. */
function high(lsn: LSN): bigint {
  return (parseLSN(lsn) ?? 0n) >> 32n;
}

/** `bytes` characters that no store compresses to nothing. */
function filler(bytes: number): string {
  return randomBytes(Math.ceil(bytes * 0.75)).toString('base64').slice(0, bytes);
}

export const lsnBoundary: Rule = {
  id: 'lsn-boundary',
  title: 'LSNs keep increasing across a 32-bit boundary (X/FFFFFFFF to X+1/0), and a catch-up from before it brings what follows',
  section: '§4 LSNs',
  level: 'MUST',
  needs: 'writable',
  async run(kit) {
    const session = await kit.live();
    const chunk = Math.max(1, Math.min(BOUNDARY_CHUNK, kit.options.boundaryBytes));
    const start = kit.head;
    let previous: LSN = start;
    let spent = 0;
    let n = 0;
    const lsnOf = (written: Written & { batch: Batch }) => written.answer.type === 'operation_complete' && written.answer.lsn !== undefined ? written.answer.lsn : written.batch.lsn;
    const step = async (): Promise<{ lsn: LSN; n: number } | Verdict> => {
      n += 1;
      const written = await kit.applied(session, kit.upsert('boundary', { n, fill: filler(chunk) }));
      const lsn = lsnOf(written);
      if (lsn === undefined) return fail(`operation ${written.operation.id} came with no LSN to compare`);
      if (compareLSN(lsn, previous) <= 0) return fail(`the LSN went from ${previous} to ${lsn}: LSNs must increase`);
      return { lsn, n };
    };
    for (;;) {
      if (spent >= kit.options.boundaryBytes) {
        return skip(`the log did not cross a 32-bit boundary: its LSNs went from ${start} to ${previous} over ${spent} bytes of writes (--boundary-bytes ${kit.options.boundaryBytes}). ` +
          'To check this rule, start the server with its log just below one, e.g. at 0/FFFF0000');
      }
      const before = previous;
      const next = await step();
      if ('status' in next) return next;
      spent += chunk;
      previous = next.lsn;
      if (high(next.lsn) === high(before)) continue;
      const after = await step();
      if ('status' in after) return after;
      const reader = await kit.connect();
      const answer = await reader.sync(before);
      if (answer.outcome !== 'complete') return fail(`a sync from ${before}, just before the boundary, was answered with ${answer.outcome}`);
      const early = answer.batches.find((batch) => batch.lsn !== undefined && compareLSN(batch.lsn, before) <= 0);
      if (early) return fail(`the catch-up from ${before} sent a batch at ${early.lsn}, at or before lastLSN`);
      const got = answer.batches.flatMap((batch) => batch.changes)
        .filter((change) => change.entityType === kit.entityType && change.entityId === 'boundary')
        .map((change) => (change.type === 'update' ? (change.data as { n?: unknown }).n : 'delete'));
      if (got.join() !== [next.n, after.n].join()) {
        return fail(`a catch-up from ${before} should bring the writes at ${next.lsn} and ${after.lsn} (n ${next.n}, ${after.n}), after the boundary; it brought n [${got.join(', ')}]`);
      }
      return pass(`crossed from ${before} to ${next.lsn}`);
    }
  },
};
