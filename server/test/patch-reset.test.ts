/**
 * Protocol 1.1 on the server, with both stores (the embedded log and PostgreSQL, several instances
 * on one database): `patch` merges into the entity's current value in the order writes are
 * applied, and a client ahead of the log gets `reset`. Real sockets, a real PostgreSQL cluster.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Change } from '../../src/protocol/change.ts';
import { compareLSN } from '../../src/protocol/lsn.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import type { SyncServer } from '../sync-server.ts';
import { changeFrames, getJson, startServer, tempDir, TestClient, wsUrl } from './helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
import { startInstance } from './postgres-helpers.ts';

const BOUNDED = { timeout: 60_000 };

type TestContext = { after(fn: () => Promise<void> | void): void };

let cluster: PostgresCluster | undefined;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

/** Starts `count` servers sharing one store of the given kind. */
const STORES: Record<string, (t: TestContext, count: number) => Promise<SyncServer[]>> = {
  'embedded log': async (t) => [await startServer(t, { dataDir: await tempDir(t) })],
  PostgreSQL: async (t, count) => {
    const url = await cluster!.createDatabase();
    return Promise.all(Array.from({ length: count }, () => startInstance(t, url)));
  },
};

function operation(id: string, type: string, entityId: string, data?: unknown) {
  const payload = data === undefined ? { entityType: 'note', entityId } : { entityType: 'note', entityId, data };
  return { type: 'operation', operation: { id, type, payload } };
}

/** Reads frames until every id in `ids` is answered; returns the answers and the changes seen. */
async function answers(client: TestClient, ids: readonly string[]): Promise<{ byId: Map<string, ServerMessage>; changes: { change: Change; lsn: string }[] }> {
  const byId = new Map<string, ServerMessage>();
  const changes: { change: Change; lsn: string }[] = [];
  while (ids.some((id) => !byId.has(id))) {
    const frame = await client.next(20_000);
    if (frame.type === 'operation_complete' || frame.type === 'operation_error') byId.set(frame.id, frame);
    if (frame.type === 'changes') for (const change of frame.changes) changes.push({ change, lsn: frame.lsn });
  }
  return { byId, changes };
}

/** Reads live frames until the client holds a change at or after `lsn`; returns the changes. */
async function changesUpTo(client: TestClient, lsn: string): Promise<Change[]> {
  const changes: Change[] = [];
  for (;;) {
    const frame = await client.next(20_000);
    if (frame.type !== 'changes') continue;
    changes.push(...frame.changes);
    if (compareLSN(frame.lsn, lsn) >= 0) return changes;
  }
}

function entityData(snapshot: Record<string, unknown>, entityId: string): unknown {
  const entities = snapshot.entities as { entityType: string; entityId: string; data: unknown }[];
  return entities.find((entity) => entity.entityType === 'note' && entity.entityId === entityId)?.data;
}

for (const [kind, start] of Object.entries(STORES)) {
  describe(`with the ${kind}`, () => {
    test('a patch merges into the current value and is sent as an update with the whole value', BOUNDED, async (t) => {
      const [server] = await start(t, 1);
      const writer = await TestClient.open(wsUrl(server!), t);
      const watcher = await TestClient.open(wsUrl(server!), t);
      await writer.sync('0/0');
      await watcher.sync('0/0');
      writer.send(operation('put', 'upsert', 'n1', { title: 'draft', done: false, tags: { a: 1 }, keep: [1, 2] }));
      writer.send(operation('merge', 'patch', 'n1', { done: true, title: null, tags: { b: 2 }, keep: [3] }));
      const { byId, changes } = await answers(writer, ['put', 'merge']);
      const merged = { done: true, tags: { a: 1, b: 2 }, keep: [3] };
      const ack = byId.get('merge');
      assert.ok(ack?.type === 'operation_complete' && ack.lsn !== undefined, `the patch is acknowledged with an lsn (${JSON.stringify(ack)})`);
      const sent = changes.find(({ lsn }) => lsn === ack.lsn)?.change ?? changes.at(-1)!.change;
      assert.equal(sent.type, 'update', 'the patch travels as an update');
      assert.deepEqual(sent.type === 'update' && sent.data, merged, 'with the whole merged value');
      assert.equal(typeof sent.timestamp, 'number', 'stamped with the server\'s time');

      const watched = await changesUpTo(watcher, ack.lsn);
      assert.deepEqual(watched.map((change) => change.type), ['update', 'update'], 'a live client gets two updates');
      assert.deepEqual(watched[1]!.type === 'update' && watched[1]!.data, merged, 'the second one whole');
      const late = await TestClient.open(wsUrl(server!), t);
      const replayed = changeFrames(await late.sync('0/0')).flatMap((frame) => frame.changes).at(-1)!;
      assert.deepEqual(replayed.type === 'update' && replayed.data, merged, 'a catch-up replays the merged value');
      assert.deepEqual(entityData(await getJson(`${server!.url}/api/entities`), 'n1'), merged, 'the entity holds it');
    });

    test('a patch of an absent or deleted entity merges into {}', BOUNDED, async (t) => {
      const [server] = await start(t, 1);
      const client = await TestClient.open(wsUrl(server!), t);
      await client.sync('0/0');
      client.send(operation('fresh', 'patch', 'new', { a: 1, gone: null, nested: { b: 2 } }));
      client.send(operation('put', 'upsert', 'old', { a: 1, b: 2 }));
      client.send(operation('remove', 'delete', 'old'));
      client.send(operation('revive', 'patch', 'old', { c: 3 }));
      const { byId } = await answers(client, ['fresh', 'put', 'remove', 'revive']);
      assert.ok([...byId.values()].every((frame) => frame.type === 'operation_complete'), 'all four applied');
      const snapshot = await getJson(`${server!.url}/api/entities`);
      assert.deepEqual(entityData(snapshot, 'new'), { a: 1, nested: { b: 2 } }, 'an absent entity counts as {}');
      assert.deepEqual(entityData(snapshot, 'old'), { c: 3 }, 'nothing of the deleted value comes back');
    });

    test('concurrent patches of different fields from two clients all survive', BOUNDED, async (t) => {
      // Through two instances on PostgreSQL, so the writes commit on different connections at once.
      const servers = await start(t, 2);
      const clients = await Promise.all([0, 1].map(async (i) => {
        const client = await TestClient.open(wsUrl(servers[i % servers.length]!), t);
        await client.sync('0/0');
        return client;
      }));
      const perClient = 40;
      const ids = clients.map((_, c) => Array.from({ length: perClient }, (_, n) => `c${c}-${n}`));
      // Pipelined, interleaved: every patch is sent before the first answer comes back.
      for (let n = 0; n < perClient; n += 1) {
        for (const [c, client] of clients.entries()) client.send(operation(ids[c]![n]!, 'patch', 'shared', { [`c${c}-${n}`]: n }));
      }
      const answered = await Promise.all(clients.map((client, c) => answers(client, ids[c]!)));
      for (const { byId } of answered) {
        assert.ok([...byId.values()].every((frame) => frame.type === 'operation_complete'), 'every patch applied');
      }
      const expected = Object.fromEntries(ids.flat().map((id) => [id, Number(id.split('-')[1])]));
      assert.deepEqual(entityData(await getJson(`${servers[0]!.url}/api/entities`), 'shared'), expected, 'no field was lost');
      // Every client's last change to the entity, in LSN order, is the whole merged value.
      const reader = await TestClient.open(wsUrl(servers.at(-1)!), t);
      const replayed = changeFrames(await reader.sync('0/0')).flatMap((frame) => frame.changes);
      assert.equal(replayed.length, 2 * perClient, 'one change per patch');
      const last = replayed.at(-1)!;
      assert.deepEqual(last.type === 'update' && last.data, expected, 'the last change holds every field');
      const sizes = replayed.map((change) => (change.type === 'update' ? Object.keys(change.data as object).length : -1));
      assert.deepEqual(sizes, sizes.map((_, i) => i + 1), 'each change adds one field to the one before');
    });

    test('a patch whose data is not an object is refused for good, saying why, and nothing is stored', BOUNDED, async (t) => {
      const [server] = await start(t, 1);
      const client = await TestClient.open(wsUrl(server!), t);
      await client.sync('0/0');
      const bad: [string, unknown][] = [['array', [1]], ['null', null], ['string', 'x'], ['number', 3], ['absent', undefined]];
      for (const [id, data] of bad) client.send(operation(id, 'patch', 'n', data));
      client.send(operation('after', 'patch', 'n', { ok: true }));
      const { byId } = await answers(client, [...bad.map(([id]) => id), 'after']);
      for (const [id] of bad) {
        const answer = byId.get(id);
        assert.ok(answer?.type === 'operation_error', `${id}: operation_error`);
        assert.equal(answer.retryable, undefined, `${id}: final`);
        assert.match(answer.message, /data must be an object \(an RFC 7386 merge patch\)/, `${id}: says why (${answer.message})`);
      }
      assert.equal(byId.get('after')?.type, 'operation_complete', 'a valid patch after them is applied');
      assert.deepEqual(entityData(await getJson(`${server!.url}/api/entities`), 'n'), { ok: true }, 'only the valid patch was stored');
      assert.equal((await getJson(`${server!.url}/api/stats`)).records, 1, 'one record');
    });

    test('a sync ahead of the log gets reset with a reason, stays idle, and a sync from 0/0 is served', BOUNDED, async (t) => {
      const [server] = await start(t, 1);
      const empty = await TestClient.open(wsUrl(server!), t);
      empty.send({ type: 'sync', clientId: 'c', lastLSN: '0/1' });
      const first = await empty.next();
      assert.ok(first.type === 'reset', `a client ahead of an empty log is reset (${JSON.stringify(first)})`);

      const writer = await TestClient.open(wsUrl(server!), t);
      await writer.sync('0/0');
      writer.send(operation('one', 'upsert', 'a', 1));
      const { byId } = await answers(writer, ['one']);
      const head = (byId.get('one') as { lsn: string }).lsn;

      const ahead = await TestClient.open(wsUrl(server!), t);
      ahead.send({ type: 'sync', clientId: 'from-elsewhere', lastLSN: 'FFFF/0' });
      const reset = await ahead.next();
      assert.ok(reset.type === 'reset', `reset, not sync_error (${JSON.stringify(reset)})`);
      const reason = String(reset.reason);
      assert.match(reason, /resume point \(lastLSN FFFF\/0\) is ahead of this server's log/, `names the resume point: ${reason}`);
      assert.ok(reason.includes(head), `names the head ${head}: ${reason}`);
      // Idle until the next sync: a change written now is not sent to it.
      writer.send(operation('two', 'upsert', 'b', 2));
      await answers(writer, ['two']);
      ahead.send({ type: 'ping' });
      assert.equal((await ahead.next()).type, 'pong', 'nothing but the pong arrives');
      const replayed = changeFrames(await ahead.sync('0/0')).flatMap((frame) => frame.changes.map((change) => change.entityId));
      assert.deepEqual(replayed, ['a', 'b'], 'a sync from 0/0 replays everything');
      writer.send(operation('three', 'upsert', 'c', 3));
      const live = (await answers(writer, ['three'])).byId.get('three') as { lsn: string };
      assert.deepEqual((await changesUpTo(ahead, live.lsn)).map((change) => change.entityId), ['c'], 'and it is live again');

      const atHead = await TestClient.open(wsUrl(server!), t);
      const frames = await atHead.sync(live.lsn);
      assert.deepEqual(frames.map((frame) => frame.type), ['sync_start', 'sync_complete'], 'a client at the head is not reset');
    });
  });
}
