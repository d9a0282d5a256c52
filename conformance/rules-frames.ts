import type { Kit } from './kit.ts';
import { fail, pass, warn, type Rule } from './rule.ts';
import { WaitError, type Session } from './session.ts';

export const pingPong: Rule = {
  id: 'ping-pong',
  title: 'every ping after a sync is answered with pong',
  section: '§5 Client to server',
  level: 'MUST',
  needs: 'synced',
  async run(kit) {
    const session = await kit.live();
    for (let i = 0; i < 3; i += 1) await session.ping(`pong ${i + 1} of 3`);
    return pass();
  },
};

/** Frames no server can take, each sent on its own after a sync. */
function probes(kit: Kit): { name: string; send(session: Session): void }[] {
  const text = (name: string, data: string) => ({ name, send: (session: Session) => session.sendRaw(data) });
  const json = (name: string, frame: unknown) => text(name, JSON.stringify(frame));
  return [
    text('text that is not JSON', 'this is not JSON {'),
    text('a JSON array', '[1,2,3]'),
    json('an object without a type', { hello: 'world' }),
    json('a frame of an unknown type', { type: 'conformance_no_such_frame' }),
    json('an operation without an id', { type: 'operation', operation: { type: 'upsert', payload: { entityType: kit.entityType, entityId: 'probe', data: {} } } }),
    json('an operation that is not an object', { type: 'operation', operation: 'upsert' }),
    json('a sync with a malformed lastLSN', { type: 'sync', clientId: kit.clientId, lastLSN: 'not-an-lsn' }),
    { name: 'a binary message', send: (session) => session.sendRaw(Buffer.from([0xde, 0xad, 0xbe, 0xef]), true) },
    { name: 'a text frame that is not UTF-8', send: (session) => session.sendRaw(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])) },
  ];
}

export const malformedFrames: Rule = {
  id: 'malformed-frames',
  title: 'a malformed frame is answered without a crash: the connection stays usable (SHOULD: with error) or is closed with a close code',
  section: '§9 Malformed input',
  level: 'MUST',
  needs: 'synced',
  async run(kit) {
    let session: Session | undefined;
    const quiet: string[] = [];
    const closedWith: string[] = [];
    for (const probe of probes(kit)) {
      session ??= await kit.live();
      probe.send(session);
      try {
        const before = await session.ping(`a pong after ${probe.name}`);
        if (!before.some(({ frame }) => frame.type === 'error' || frame.type === 'operation_error')) quiet.push(probe.name);
      } catch (error) {
        if (!(error instanceof WaitError)) throw error;
        const closed = session.closed;
        if (!closed) return fail(`after ${probe.name}, the connection stayed open but a ping got no pong: ${error.message}`);
        if (closed.code === 1006) return fail(`after ${probe.name}, the connection broke without a close frame (1006): the server crashed or dropped it`);
        closedWith.push(`${probe.name}: ${closed.code}`);
        session = undefined;
      }
    }
    // Still serving: a new connection syncs and writes.
    const after = await kit.live();
    if (kit.writable) await kit.applied(after, kit.upsert('after-probes', { ok: true }));
    const closes = closedWith.length > 0 ? `; closed with ${closedWith.join(', ')}` : '';
    if (quiet.length > 0) return warn(`no error frame answered ${quiet.join(', ')}; a server SHOULD say what is wrong${closes}`);
    return pass(closes === '' ? undefined : closes.slice(2));
  },
};

export const lsnOrder: Rule = {
  id: 'lsn-order',
  title: 'on every connection of the run, batches came in increasing LSN order after each sync',
  section: '§4 LSNs, §7 Batches: what the server does',
  level: 'MUST',
  async run(kit) {
    const { disorder } = kit.log;
    if (disorder.length === 0) return pass();
    return fail(`${disorder.length} batch${disorder.length === 1 ? '' : 'es'} out of order: ${disorder.slice(0, 3).join('; ')}`);
  },
};

export const wellFormed: Rule = {
  id: 'well-formed',
  title: 'every frame the server sent is a JSON text frame the protocol defines, with valid change items',
  section: '§1 Frames and JSON, §7 Change items',
  level: 'MUST',
  async run(kit) {
    const { malformed } = kit.log;
    if (malformed.length === 0) return pass();
    return fail(`${malformed.length} malformed: ${malformed.slice(0, 3).join('; ')}`);
  },
};
