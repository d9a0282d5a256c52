/** Compaction seen by clients of the embedded-log server, over real sockets. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareLSN } from '../../src/protocol/lsn.ts';
import type { Change } from '../../src/protocol/change.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import type { SyncServer } from '../sync-server.ts';
import { HOUR } from './compaction-helpers.ts';
import { changeFrames, eventually, postChanges, startServer, tempDir, TestClient, update, wsUrl } from './helpers.ts';
import { syncedAs } from './identity-helpers.ts';
import { applyFrames, scopesAcrossCompaction, serverEntities } from './compaction-scenarios.ts';

const BOUNDED = { timeout: 60_000 };

function remove(entityType: string, entityId: string): Change {
  return { type: 'delete', entityType, entityId };
}

async function post(server: SyncServer, changes: Change[]): Promise<string> {
  const { status, body } = await postChanges(server.url, changes);
  assert.equal(status, 200, JSON.stringify(body));
  return String(body.lsn);
}

test('clients behind, at and ahead of the horizon: behind a dropped delete gets reset, then a snapshot of the live entities; at and ahead resume', BOUNDED, async (t) => {
  let clock = Date.now();
  const server = await startServer(t, { dataDir: await tempDir(t), tombstoneRetentionMs: HOUR, now: () => clock });
  await post(server, [update('item', 'a', 1), update('item', 'b', 1)]);
  const behind = await post(server, [update('item', 'c', 1)]);
  await post(server, [remove('item', 'a')]);
  for (let n = 0; n < 50; n += 1) await post(server, [update('item', 'b', n)]);
  const horizon = await post(server, [update('item', 'c', 2)]);
  clock += 2 * HOUR;
  const report = await server.compact({ horizon });
  assert.equal(report.removalsDropped, 1);
  assert.equal(report.changesAfter, 2, 'b and c, once each');
  const ahead = await post(server, [update('item', 'd', 1)]);
  const expected = await serverEntities(server);

  const late = await TestClient.open(wsUrl(server), t);
  late.send({ type: 'sync', clientId: 'late', lastLSN: behind });
  const resetFrames = await late.until('reset');
  assert.equal(changeFrames(resetFrames).length, 0, 'nothing is sent before the reset');
  assert.match((resetFrames.at(-1) as { reason?: string }).reason ?? '', /compacted/);
  late.send({ type: 'sync', clientId: 'late', lastLSN: '0/0' });
  const snapshot = await late.until('sync_complete');
  assert.deepEqual(applyFrames(snapshot).held, expected, 'the snapshot is the live entities');
  assert.equal(changeFrames(snapshot).flatMap((frame) => frame.changes).length, 3, 'one change per live entity, not the history');

  for (const [name, from] of [['at', horizon], ['ahead', ahead]] as const) {
    const client = await TestClient.open(wsUrl(server), t);
    client.send({ type: 'sync', clientId: name, lastLSN: from });
    const frames = await client.until('sync_complete');
    assert.ok(!frames.some((frame) => frame.type === 'reset'), `a client ${name} the horizon is not reset`);
    const held = new Map([...expected].filter(([key]) => name === 'ahead' || key !== 'item/d'));
    assert.deepEqual(applyFrames(frames, held, from).held, expected);
  }
});

test('a reset snapshot under concurrent writes: no change lost, none twice, each entity in order', BOUNDED, async (t) => {
  let clock = Date.now();
  const server = await startServer(t, { dataDir: await tempDir(t), tombstoneRetentionMs: HOUR, now: () => clock, batchSize: 5 });
  const behind = await post(server, [update('item', 'gone', 0)]);
  await post(server, [remove('item', 'gone')]);
  for (let n = 0; n < 300; n += 1) await post(server, [update('item', String(n % 40), { n })]);
  clock += 2 * HOUR;
  await server.compact();
  const client = await TestClient.open(wsUrl(server), t);
  client.send({ type: 'sync', clientId: 'late', lastLSN: behind });
  await client.until('reset');
  client.send({ type: 'sync', clientId: 'late', lastLSN: '0/0' });
  // Writes (and another compaction) while the snapshot is under way.
  const writes = (async () => {
    let last = '';
    for (let n = 0; n < 200; n += 1) {
      last = await post(server, [update('item', String(n % 50), { later: n })]);
      if (n === 100) await server.compact();
    }
    return last;
  })();
  const frames: ServerMessage[] = [];
  const lastWrite = await writes;
  for (;;) {
    const frame = await client.next();
    frames.push(frame);
    assert.notEqual(frame.type, 'reset', 'a client past the floor is never reset again');
    if (frame.type === 'changes' && compareLSN(frame.lsn, lastWrite) >= 0) break;
  }
  const { held } = applyFrames(frames);
  assert.deepEqual(held, await serverEntities(server));
  const perEntity = new Map<string, number[]>();
  for (const frame of changeFrames(frames)) {
    for (const change of frame.changes) {
      const seenOf = perEntity.get(change.entityId) ?? [];
      if (change.type === 'update') seenOf.push((change.data as { n?: number; later?: number }).later ?? -1);
      perEntity.set(change.entityId, seenOf);
    }
  }
  for (const [entityId, values] of perEntity) {
    const later = values.filter((value) => value >= 0);
    assert.deepEqual(later, [...later].sort((a, b) => a - b), `the writes to ${entityId} arrive in order`);
    assert.equal(new Set(later).size, later.length, `none of ${entityId}'s writes arrives twice`);
  }
});

test('scopes across compaction: a snapshot never holds an entity outside the reader\'s scopes, and a move out still reaches an old reader', BOUNDED, async (t) => {
  await scopesAcrossCompaction(t, { dataDir: await tempDir(t) });
});

test('automatic compaction: off by default; with compactEvery the log is compacted once that many changes were appended', BOUNDED, async (t) => {
  const plain = await startServer(t, { dataDir: await tempDir(t) });
  for (let n = 0; n < 120; n += 1) await post(plain, [update('item', String(n % 5), n)]);
  const explicit = await plain.compact();
  assert.equal(explicit.changesBefore, 120, 'nothing compacted the log by itself');
  assert.equal(explicit.changesAfter, 5);

  const server = await startServer(t, { dataDir: await tempDir(t), compactEvery: 50 });
  for (let n = 0; n < 120; n += 1) await post(server, [update('item', String(n % 5), n)]);
  await eventually(async () => (await server.store.stats()).changes < 120, 10_000, 'an automatic compaction');
  const expected = await serverEntities(server);
  const { frames } = await syncedAs(t, server, undefined, '0/0', 'fresh');
  assert.deepEqual(applyFrames(frames).held, expected);
  assert.ok(changeFrames(frames).flatMap((frame) => frame.changes).length < 120);
});
