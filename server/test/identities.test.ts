/**
 * Identities, scopes and who may write what, on both stores (the embedded log and PostgreSQL),
 * with real sockets and several identities: alice (scopes alice and shared), bob (bob and shared)
 * and an admin of every scope.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { compareLSN } from '../../src/protocol/lsn.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import { createSyncServer, type SyncServer, type SyncServerOptions } from '../sync-server.ts';
import { eventually, tempDir } from './helpers.ts';
import { answerTo, drop, nextChanges, nextVisible, note, scopedOptions, seen, syncedAs, tokenFor } from './identity-helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';

const BOUNDED = { timeout: 60_000 };

let cluster: PostgresCluster | undefined;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

type StoreKind = 'embedded log' | 'PostgreSQL';
const STORES: StoreKind[] = ['embedded log', 'PostgreSQL'];

async function serve(t: { after(fn: () => Promise<void>): void }, kind: StoreKind, options: SyncServerOptions = {}): Promise<SyncServer> {
  const where = kind === 'PostgreSQL' ? { storeUrl: await cluster!.createDatabase() } : { dataDir: await tempDir(t) };
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, ...scopedOptions, ...where, ...options });
  t.after(() => server.close());
  return server;
}

const tokens = async () => ({
  alice: await tokenFor('alice', ['alice', 'shared']),
  bob: await tokenFor('bob', ['bob', 'shared']),
  admin: await tokenFor('admin', ['*']),
});

function only<T extends ServerMessage['type']>(frame: ServerMessage | undefined, type: T): Extract<ServerMessage, { type: T }> {
  assert.equal(frame?.type, type, `expected ${type}, got ${JSON.stringify(frame)}`);
  return frame as Extract<ServerMessage, { type: T }>;
}

for (const kind of STORES) {
  test(`${kind}: each identity catches up on, and is sent live, only the entities of its scopes; a reader of every scope gets them all`, BOUNDED, async (t) => {
    const server = await serve(t, kind);
    const token = await tokens();
    const { client: admin } = await syncedAs(t, server, token.admin);
    for (const [i, [id, scope]] of [['a1', 'alice'], ['b1', 'bob'], ['s1', 'shared'], ['a2', 'alice']].entries()) {
      admin.send(note(`seed-${i}`, id!, { text: id, scope }));
      only((await answerTo(admin, `seed-${i}`)).answer, 'operation_complete');
    }
    const alice = await syncedAs(t, server, token.alice);
    const bob = await syncedAs(t, server, token.bob);
    assert.deepEqual(seen(alice.frames), ['a1 update', 's1 update', 'a2 update']);
    assert.deepEqual(seen(bob.frames), ['b1 update', 's1 update']);
    const head = server.store.head;
    assert.equal(only(alice.frames.at(-1), 'sync_complete').lsn, head, 'the catch-up covers the whole log');
    assert.equal(only(bob.frames.at(-1), 'sync_complete').lsn, head);
    assert.ok(only(alice.frames[0], 'sync_start').total! >= 3);

    // Live: alice's private note reaches alice and the admin, never bob; the shared one reaches everyone.
    alice.client.send(note('private', 'a3', { text: 'mine', scope: 'alice' }));
    alice.client.send(note('public', 's2', { text: 'ours' }));
    only((await answerTo(alice.client, 'public')).answer, 'operation_complete');
    const bobLive = await nextVisible(bob.client);
    assert.deepEqual(seen([bobLive]), ['s2 update'], 'bob never gets alice\'s private note');
    const adminLive = [await nextChanges(admin), await nextChanges(admin)];
    assert.deepEqual(seen(adminLive), ['a3 update', 's2 update']);
  });

  test(`${kind}: a reader who may see none of the new changes still has its resume point moved to the head, and replays nothing`, BOUNDED, async (t) => {
    const server = await serve(t, kind);
    const token = await tokens();
    const bob = await syncedAs(t, server, token.bob);
    const { client: alice } = await syncedAs(t, server, token.alice);
    for (let i = 0; i < 5; i += 1) alice.send(note(`p${i}`, `a${i}`, { scope: 'alice', i }));
    const last = only((await answerTo(alice, 'p4')).answer, 'operation_complete');
    // Live: an empty batch at the head, once nothing more is on its way.
    let batch = await nextChanges(bob.client);
    while (compareLSN(batch.lsn, last.lsn!) < 0) batch = await nextChanges(bob.client);
    assert.deepEqual(batch.changes, [], 'bob is sent none of alice\'s notes');
    assert.equal(batch.lsn, last.lsn);
    // Catch-up: from 0/0 it says where the log ends; from there, nothing is replayed.
    const fresh = await syncedAs(t, server, token.bob, '0/0', 'bob-2');
    assert.deepEqual(seen(fresh.frames), []);
    const end = only(fresh.frames.at(-1), 'sync_complete').lsn!;
    assert.equal(end, last.lsn);
    const again = await syncedAs(t, server, token.bob, end, 'bob-2');
    assert.deepEqual(again.frames.map((frame) => frame.type), ['sync_start', 'sync_complete']);
    assert.equal(only(again.frames[0], 'sync_start').total, 0);
  });

  test(`${kind}: an update that moves an entity out of a reader's scopes reaches it as a delete; one that moves it in arrives whole`, BOUNDED, async (t) => {
    const server = await serve(t, kind);
    const token = await tokens();
    const { client: admin } = await syncedAs(t, server, token.admin);
    admin.send(note('create', 'n', { text: 'draft', scope: 'alice', tags: ['x'] }));
    await answerTo(admin, 'create');
    const alice = await syncedAs(t, server, token.alice);
    const bob = await syncedAs(t, server, token.bob);
    assert.deepEqual(seen(bob.frames), []);
    // A patch moves it: the merged whole value goes to bob, a delete to alice.
    admin.send(note('move', 'n', { scope: 'bob' }, 'patch'));
    await answerTo(admin, 'move');
    const toAlice = await nextChanges(alice.client);
    assert.deepEqual(toAlice.changes.map((change) => ({ type: change.type, entityId: change.entityId, data: change.type === 'update' ? change.data : undefined })), [{ type: 'delete', entityId: 'n', data: undefined }]);
    const toBob = await nextChanges(bob.client);
    assert.deepEqual(toBob.changes.map((change) => ({ type: change.type, data: change.type === 'update' ? change.data : undefined })), [{ type: 'update', data: { text: 'draft', scope: 'bob', tags: ['x'] } }]);
    // The same in catch-up: from before the move, alice gets the delete; from 0/0 she never sees it.
    const alicePast = await syncedAs(t, server, token.alice, only(alice.frames.at(-1), 'sync_complete').lsn, 'alice-2');
    assert.deepEqual(seen(alicePast.frames), ['n delete']);
    const bobFresh = await syncedAs(t, server, token.bob, '0/0', 'bob-2');
    assert.deepEqual(seen(bobFresh.frames), ['n update']);
    // Moved back: alice gets the whole value again, bob a delete.
    admin.send(note('back', 'n', { text: 'final', scope: 'alice' }));
    await answerTo(admin, 'back');
    assert.deepEqual(seen([await nextChanges(alice.client)]), ['n update']);
    assert.deepEqual(seen([await nextChanges(bob.client)]), ['n delete']);
  });

  test(`${kind}: writes into, over and deleting another identity's entities are refused with the reason and store nothing`, BOUNDED, async (t) => {
    const server = await serve(t, kind);
    const token = await tokens();
    const { client: alice } = await syncedAs(t, server, token.alice);
    alice.send(note('mine', 'a1', { text: 'alice\'s', scope: 'alice' }));
    const stored = only((await answerTo(alice, 'mine')).answer, 'operation_complete');
    const { client: bob } = await syncedAs(t, server, token.bob);
    const attacks = [
      note('into', 'b-into-alice', { text: 'planted', scope: 'alice' }),
      note('over', 'a1', { text: 'overwritten', scope: 'bob' }),
      note('patch-over', 'a1', { text: 'patched' }, 'patch'),
      drop('delete', 'a1'),
      note('unknown-scope', 'b2', { scope: 'carol' }),
    ];
    for (const attack of attacks) {
      bob.send(attack);
      const { answer } = await answerTo(bob, attack.operation.id);
      assert.match(only(answer, 'operation_error').message, /not allowed/, attack.operation.id);
      assert.equal(only(answer, 'operation_error').retryable, undefined, 'refused for good');
    }
    bob.send(note('own', 'b1', { scope: 'bob' }));
    const own = only((await answerTo(bob, 'own')).answer, 'operation_complete');
    assert.equal(compareLSN(own.lsn!, stored.lsn!) > 0, true);
    // (PostgreSQL logs a refused write as a record without changes, so that its id keeps its answer.)
    assert.equal((await server.stats()).changes, 2, 'nothing of the refused writes was stored');
    assert.deepEqual(await server.store.entity('note', 'a1'), { entityType: 'note', entityId: 'a1', data: { text: 'alice\'s', scope: 'alice' }, scope: 'alice' });
    // Alice may still write her own, and a reader of every scope anything.
    alice.send(note('mine-2', 'a1', { text: 'edited', scope: 'alice' }));
    only((await answerTo(alice, 'mine-2')).answer, 'operation_complete');
  });

  test(`${kind}: operation ids are per identity; a reused id with another payload is reported, a repeat answered as the first`, BOUNDED, async (t) => {
    const server = await serve(t, kind);
    const token = await tokens();
    const { client: alice } = await syncedAs(t, server, token.alice);
    const { client: bob } = await syncedAs(t, server, token.bob, '0/0', 'bob');
    // Bob sends alice's next id first: both writes are applied.
    bob.send(note('op-1', 'b1', { scope: 'bob' }));
    only((await answerTo(bob, 'op-1')).answer, 'operation_complete');
    alice.send(note('op-1', 'a1', { scope: 'alice' }));
    const first = only((await answerTo(alice, 'op-1')).answer, 'operation_complete');
    assert.equal(server.store.head, first.lsn, 'alice\'s write was stored, not answered with bob\'s');
    // The same id and payload again: answered with the first LSN, nothing stored.
    alice.send(note('op-1', 'a1', { scope: 'alice' }));
    assert.equal(only((await answerTo(alice, 'op-1')).answer, 'operation_complete').lsn, first.lsn);
    // The same id with another payload: reported, naming the id, nothing stored.
    alice.send(note('op-1', 'a1', { scope: 'alice', text: 'something else' }));
    assert.match(only((await answerTo(alice, 'op-1')).answer, 'operation_error').message, /"op-1" was already used for a different operation/);
    assert.equal((await server.stats()).records, 2);
  });

  test(`${kind}: app-defined operation types validate and compute fields; authorize and scopeOf that throw refuse one operation and the server goes on`, BOUNDED, async (t) => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    const server = await serve(t, kind, {
      now: () => 1234,
      operations: {
        'add-note': (payload, { identity, now }) => {
          const text = (payload as { text?: unknown } | null)?.text;
          if (typeof text !== 'string' || text.length === 0) throw new Error('a note needs text');
          return [{ type: 'update', entityType: 'note', entityId: `${identity.id}-${text}`, data: { text, scope: identity.id, by: identity.id, at: now } }];
        },
      },
      authorize: (identity, { change }, current) => {
        if (change.entityId === 'explode') throw new Error(`authorize crashed on ${identity.id}`);
        if (current && (current.data as { locked?: boolean }).locked) return 'that note is locked';
        return true;
      },
    });
    const token = await tokens();
    const { client: alice } = await syncedAs(t, server, token.alice);
    alice.send({ type: 'operation', operation: { id: 'add', type: 'add-note', payload: { text: 'hi' } } });
    const added = only((await answerTo(alice, 'add')).answer, 'operation_complete');
    assert.deepEqual(await server.store.entity('note', 'alice-hi'), { entityType: 'note', entityId: 'alice-hi', data: { text: 'hi', scope: 'alice', by: 'alice', at: 1234 }, scope: 'alice' });
    alice.send({ type: 'operation', operation: { id: 'add', type: 'add-note', payload: { text: 'hi' } } });
    assert.equal(only((await answerTo(alice, 'add')).answer, 'operation_complete').lsn, added.lsn, 'once per id, like the built-in types');
    alice.send({ type: 'operation', operation: { id: 'empty', type: 'add-note', payload: { text: '' } } });
    assert.equal(only((await answerTo(alice, 'empty')).answer, 'operation_error').message, 'operation rejected: a note needs text');
    alice.send(note('lock', 'locked', { locked: true, scope: 'alice' }));
    await answerTo(alice, 'lock');
    alice.send(note('unlock', 'locked', { locked: false, scope: 'alice' }));
    assert.equal(only((await answerTo(alice, 'unlock')).answer, 'operation_error').message, 'operation rejected: that note is locked');
    alice.send(note('crash', 'explode', { scope: 'alice' }));
    assert.equal(only((await answerTo(alice, 'crash')).answer, 'operation_error').message, 'operation rejected: the server could not authorize it');
    alice.send(note('bad-scope', 'x', { scope: 'boom' }));
    assert.match(only((await answerTo(alice, 'bad-scope')).answer, 'operation_error').message, /scopeOf failed for note "x": scopeOf cannot place this note/);
    alice.send(note('after', 'fine', { scope: 'alice' }));
    only((await answerTo(alice, 'after')).answer, 'operation_complete');
    await eventually(() => warnings.some((warning) => warning.includes('authorize crashed on alice')), 5000, 'the authorize failure is logged');
    assert.ok(warnings.some((warning) => warning.includes('scopeOf cannot place this note')), 'the scopeOf failure is logged');
    assert.ok(!warnings.join('\n').includes(token.alice), 'no token in the log');
  });

  test(`${kind}: a batch names the operations of the client that wrote it, to that client only, and its acknowledgement still follows`, BOUNDED, async (t) => {
    const server = await serve(t, kind);
    const token = await tokens();
    const { client: writer } = await syncedAs(t, server, token.alice, '0/0', 'writer');
    const { client: other } = await syncedAs(t, server, token.alice, '0/0', 'other');
    writer.send(note('named', 's1', { text: 'shared' }));
    const { answer, before } = await answerTo(writer, 'named');
    const own = before.filter((frame) => frame.type === 'changes');
    assert.equal(own.length, 1);
    assert.deepEqual(only(own[0], 'changes').operations, ['named']);
    assert.equal(only(answer, 'operation_complete').lsn, only(own[0], 'changes').lsn);
    const theirs = await nextChanges(other);
    assert.equal(theirs.operations, undefined, 'another client is not told the writer\'s ids');
    assert.deepEqual(seen([theirs]), ['s1 update']);
  });

  test(`${kind}: server.reset(filter) sends reset to the matching identities only; they resync from 0/0 and see what their scopes allow then`, BOUNDED, async (t) => {
    const grants = new Map([['alice', ['alice']], ['bob', ['bob']]]);
    const server = await serve(t, kind, {
      // The app's own table of scopes: the token names the user, the app decides what it may see.
      authenticate: (token) => (token && grants.has(token) ? { id: token, scopes: grants.get(token)! } : null),
    });
    const alice = await syncedAs(t, server, 'alice', '0/0', 'alice');
    const bob = await syncedAs(t, server, 'bob', '0/0', 'bob');
    bob.client.send(note('b', 'b1', { scope: 'bob' }));
    await answerTo(bob.client, 'b');
    grants.set('alice', ['alice', 'bob']);
    assert.equal(server.reset((identity) => identity.id === 'alice', 'alice was given bob\'s notes'), 1);
    // (Empty batches may come first: bob's note went by outside alice's scopes.)
    const reset = only((await alice.client.until('reset')).at(-1), 'reset');
    assert.equal(reset.reason, 'alice was given bob\'s notes');
    alice.client.send({ type: 'sync', clientId: 'alice', lastLSN: '0/0', token: 'alice' });
    const resynced = await alice.client.until('sync_complete');
    assert.deepEqual(seen(resynced), ['b1 update']);
    bob.client.send({ type: 'ping' });
    assert.deepEqual((await bob.client.until('pong')).map((frame) => frame.type), ['pong'], 'bob was not reset');
  });
}
