import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareLSN } from '../../src/protocol/lsn.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import {
  changeFrames,
  eventually,
  getJson,
  only,
  postChanges,
  startServer,
  tempDir,
  TestClient,
  update,
  upsert,
  wsUrl,
} from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 15_000 };

test('a sync replays only the changes after lastLSN, in batches that never split a record', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), batchSize: 3 });
  const lsns: string[] = [];
  // Records of 1, 2 and 4 changes, repeated: the 4-change record exceeds the batch size.
  for (let round = 0; round < 20; round += 1) {
    for (const size of [1, 2, 4]) {
      const changes = Array.from({ length: size }, (_, i) => update('item', `${round}-${size}-${i}`, { round }));
      const { body } = await postChanges(server.url, changes);
      lsns.push(String(body.lsn));
    }
  }
  // Resume from a record whose LSN sorts after later LSNs as a string.
  const resumeIndex = lsns.findIndex((lsn, i) => lsns.slice(i + 1).some((later) => later < lsn));
  assert.ok(resumeIndex >= 0, 'the log is long enough for string order to differ from numeric order');
  const resumeFrom = lsns[resumeIndex]!;
  const expected = lsns.slice(resumeIndex + 1);

  const client = await TestClient.open(wsUrl(server), t);
  const frames = await client.sync(resumeFrom);
  const start = only(frames[0]!, 'sync_start');
  const complete = only(frames.at(-1)!, 'sync_complete');
  assert.equal(start.lsn, lsns.at(-1));
  assert.equal(complete.lsn, lsns.at(-1));

  const batches = changeFrames(frames);
  const replayed = batches.flatMap((batch) => batch.changes);
  assert.equal(start.total, replayed.length);
  for (const batch of batches) {
    assert.ok(batch.changes.length <= 3 || batch.changes.length === 4, `batch of ${batch.changes.length}`);
    assert.ok(compareLSN(batch.lsn, resumeFrom) > 0, 'nothing at or before lastLSN');
  }
  // Each batch ends exactly on a record boundary, so its lsn is one of the record LSNs.
  assert.ok(batches.every((batch) => expected.includes(batch.lsn)), 'batches end on record LSNs');
  assert.equal(batches.at(-1)!.lsn, lsns.at(-1));
  const all = changeFrames((await syncAll(server)).frames).flatMap((batch) => batch.changes);
  assert.deepEqual(replayed, all.slice(all.length - replayed.length));
});

async function syncAll(server: { port: number }) {
  const client = await TestClient.open(wsUrl(server));
  const frames = await client.sync('0/0');
  client.socket.close();
  return { frames };
}

test('a sync from the head replays nothing, and a second sync on the same socket replays again', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const { body } = await postChanges(server.url, [update('a', '1', 1), update('a', '2', 2)]);
  const client = await TestClient.open(wsUrl(server), t);
  const fromHead = await client.sync(String(body.lsn));
  assert.deepEqual(fromHead.map((f) => f.type), ['sync_start', 'sync_complete']);
  assert.equal(only(fromHead[0]!, 'sync_start').total, 0);
  const again = await client.sync('0/0');
  assert.deepEqual(changeFrames(again).flatMap((b) => b.changes.map((c) => c.entityId)), ['1', '2']);
});

test('after a sync, garbage gets an error frame and the connection stays open', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  const garbage = [
    'not json',
    '[1,2]',
    '{"no":"type"}',
    '{"type":"launch_missiles"}',
    '{"type":"sync","clientId":"c","lastLSN":"zz/1"}',
    '{"type":"operation","operation":{"id":"","type":"upsert"}}',
    Buffer.from([0xde, 0xad]),
  ];
  for (const frame of garbage) {
    client.socket.send(frame);
    const reply = only(await client.next(), 'error');
    assert.ok(reply.message.length > 0, 'the error says something');
  }
  client.send({ type: 'ping' });
  only(await client.next(), 'pong');
  assert.equal(client.socket.readyState, client.socket.OPEN);
});

test('an unknown operation type or an invalid payload gets operation_error', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  const rejected = [
    { id: 'a', type: 'explode', payload: {} },
    { id: 'b', type: 'upsert', payload: { entityType: 'task', entityId: 'x' } },
    { id: 'c', type: 'delete', payload: { entityType: '', entityId: 'x' } },
    { id: 'd', type: 'upsert', payload: 'nope' },
  ];
  for (const operation of rejected) {
    client.send({ type: 'operation', operation });
    const reply = only(await client.next(), 'operation_error');
    assert.equal(reply.id, operation.id);
    assert.equal(reply.retryable, undefined, 'a refusal for good is not retryable');
  }
  assert.equal((await getJson(`${server.url}/api/stats`)).records, 0);
});

test('a change is broadcast to every live client, the sender included, before its answer', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const sender = await TestClient.open(wsUrl(server), t);
  const other = await TestClient.open(wsUrl(server), t);
  await sender.sync('0/0');
  await other.sync('0/0');
  sender.send(upsert('op-x', 'shared', { n: 1 }));
  sender.send({ type: 'operation', operation: { id: 'op-y', type: 'delete', payload: { entityType: 'task', entityId: 'shared' } } });
  const senderFrames = [await sender.next(), await sender.next(), await sender.next(), await sender.next()];
  // Each answer follows the changes frame that carries its LSN (both may share one fsync).
  for (const [index, frame] of senderFrames.entries()) {
    if (frame.type !== 'operation_complete') continue;
    const carrier = senderFrames.findIndex((f) => f.type === 'changes' && f.lsn === frame.lsn);
    assert.ok(carrier >= 0 && carrier < index, `operation ${frame.id} answered after its change`);
  }
  assert.deepEqual(senderFrames.filter((f) => f.type === 'operation_complete').map((f) => f.type === 'operation_complete' && f.id), ['op-x', 'op-y']);
  const otherFrames = [only(await other.next(), 'changes'), only(await other.next(), 'changes')];
  assert.deepEqual(otherFrames.map((f) => f.changes[0]!.type), ['update', 'delete']);
  assert.deepEqual(otherFrames.map((f) => f.lsn), changeFrames(senderFrames).map((f) => f.lsn));
  const { body } = await postChanges(server.url, [update('task', 'posted', 1)]);
  assert.equal(only(await other.next(), 'changes').lsn, body.lsn);
  assert.equal(only(await sender.next(), 'changes').lsn, body.lsn);
});

test('changes appended during a replay are delivered exactly once, in order', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), batchSize: 5, maxBufferedBytes: 4 << 20 });
  // More than the kernel's socket buffers hold, so a paused reader stalls the replay midway.
  const blob = 'x'.repeat(32 * 1024);
  let preloaded = 0;
  for (let record = 0; record < 60; record += 1) {
    const changes = Array.from({ length: 10 }, (_, i) => update('seq', `pre-${record}-${i}`, blob));
    await postChanges(server.url, changes);
    preloaded += changes.length;
  }
  const writer = await TestClient.open(wsUrl(server), t);
  await writer.sync('0/0');
  const reader = await TestClient.open(wsUrl(server), t);
  reader.send({ type: 'sync', clientId: 'reader', lastLSN: '0/0' });
  reader.socket.pause();
  // The reader's own operation: its answer must wait until the reader has been sent its change.
  reader.send(upsert('reader-op', 'reader-op', 'mine'));
  // While the reader's replay is stalled, append through both doors: operations and HTTP.
  const during = 120;
  const appended: Promise<unknown>[] = [];
  for (let i = 0; i < during; i += 1) {
    if (i % 2 === 0) writer.send(upsert(`live-${i}`, `live-${i}`, i));
    else appended.push(postChanges(server.url, [update('task', `live-${i}`, i)]));
  }
  await Promise.all(appended);
  for (let acks = 0; acks < during / 2; ) if ((await writer.next()).type === 'operation_complete') acks += 1;
  reader.socket.resume();

  const received: { entityId: string; lsn: string }[] = [];
  const types = new Set<string>();
  let answer: string | undefined;
  while (received.length < preloaded + during + 1 || answer === undefined) {
    const frame = await reader.next();
    types.add(frame.type);
    if (frame.type === 'changes') {
      for (const change of frame.changes) received.push({ entityId: change.entityId, lsn: frame.lsn });
    }
    if (frame.type === 'operation_complete') {
      answer = frame.lsn!;
      // The change came in a frame whose lsn (that of the frame's last record) is not below it.
      const change = received.find((r) => r.entityId === 'reader-op');
      assert.ok(change && compareLSN(change.lsn, answer) >= 0, 'answered after its change');
    }
  }
  assert.ok(types.has('sync_complete'), 'the replay completed');
  const all = changeFrames((await syncAll(server)).frames).flatMap((b) => b.changes.map((c) => c.entityId));
  assert.equal(all.length, preloaded + during + 1);
  assert.deepEqual(received.map((r) => r.entityId), all);
  for (let i = 1; i < received.length; i += 1) {
    assert.ok(compareLSN(received[i]!.lsn, received[i - 1]!.lsn) >= 0, 'frames arrive in LSN order');
  }
  reader.send({ type: 'ping' });
  only(await reader.next(), 'pong');
});

test('a frame larger than maxPayload closes the socket with 1009', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), maxPayload: 1024 });
  const client = await TestClient.open(wsUrl(server), t);
  client.send(upsert('big', 'big', 'x'.repeat(4096)));
  const { code } = await client.closed;
  assert.equal(code, 1009);
});

test('a client that never reads is dropped instead of buffered without bound', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), maxBufferedBytes: 64 * 1024 });
  const reader = await TestClient.open(wsUrl(server), t);
  const stalled = await TestClient.open(wsUrl(server), t);
  await reader.sync('0/0');
  await stalled.sync('0/0');
  stalled.socket.pause();
  const blob = 'x'.repeat(256 * 1024);
  // The kernel's socket buffers take some megabytes first; bounded so a broken bound fails.
  for (let i = 0; i < 200 && (await server.stats()).clients > 1; i += 1) {
    await postChanges(server.url, [update('blob', `${i}`, blob)]);
  }
  assert.equal((await server.stats()).clients, 1);
  reader.send({ type: 'ping' });
  let frame = await reader.next();
  while (frame.type === 'changes') frame = await reader.next();
  assert.equal(frame.type, 'pong', 'the reading client is still served');
});

test('the authenticate hook refuses a sync with 4001 and never echoes the token', BOUNDED, async (t) => {
  const seen: { token: string | undefined; clientId: string }[] = [];
  const server = await startServer(t, {
    dataDir: await tempDir(t),
    authenticate: async (token, { clientId }) => {
      seen.push({ token, clientId: clientId ?? '' });
      return token === 'open-sesame';
    },
  });
  const refused = await TestClient.open(wsUrl(server), t);
  refused.send({ type: 'sync', clientId: 'mallory', lastLSN: '0/0', token: 'guess' });
  refused.send(upsert('sneaky', 'x', 1));
  const closed = await refused.closed;
  assert.equal(closed.code, 4001);
  assert.equal(closed.reason, 'unauthorized');
  assert.ok(!closed.reason.includes('guess'), 'the token is not echoed');
  assert.equal((await server.stats()).records, 0);

  const allowed = await TestClient.open(wsUrl(server), t);
  const frames = await allowed.sync('0/0', { token: 'open-sesame' });
  assert.equal(frames[0]!.type, 'sync_start');
  assert.deepEqual(seen, [{ token: 'guess', clientId: 'mallory' }, { token: 'open-sesame', clientId: 'test-client' }]);
});

test('sync_request is sent on connect when asked for, and the query string is ignored', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), syncRequestOnConnect: true });
  const client = await TestClient.open(`${wsUrl(server)}?clientId=c&lastLSN=0%2F0`, t);
  only(await client.next(), 'sync_request');
  const frames = await client.sync('0/0');
  assert.deepEqual(frames.map((f) => f.type), ['sync_start', 'sync_complete']);
});

test('the heartbeat drops a socket that answers no pings and keeps one that does', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), heartbeatInterval: 50 });
  const healthy = await TestClient.open(wsUrl(server), t);
  await healthy.sync('0/0');
  const { WebSocket } = await import('ws');
  const silent = new WebSocket(wsUrl(server), { autoPong: false });
  t.after(() => silent.terminate());
  const closed = new Promise<number>((resolve) => silent.on('close', (code) => resolve(code)));
  await closed;
  healthy.send({ type: 'ping' });
  only(await healthy.next(), 'pong');
  assert.equal((await server.stats()).clients, 1);
});

test('a sync during a replay restarts it from the new lastLSN', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), batchSize: 1, maxBufferedBytes: 4 << 20 });
  const blob = 'x'.repeat(64 * 1024);
  const lsns: string[] = [];
  for (let i = 0; i < 200; i += 1) lsns.push(String((await postChanges(server.url, [update('r', `${i}`, blob)])).body.lsn));
  const client = await TestClient.open(wsUrl(server), t);
  // Paused, the client cannot take the first replay whole, so the second sync lands inside it.
  client.socket.pause();
  client.send({ type: 'sync', clientId: 'c', lastLSN: '0/0' });
  await eventually(async () => (await server.stats()).bytesHeld > 0, 5000, 'the first replay under way');
  client.send({ type: 'sync', clientId: 'c', lastLSN: lsns[149] });
  client.socket.resume();
  const frames = await client.until('sync_complete');
  const restart = frames.map((f) => f.type).lastIndexOf('sync_start');
  assert.ok(restart > 0, 'the first replay was under way when the second sync arrived');
  assert.deepEqual(replayedIds(frames.slice(restart)), Array.from({ length: 50 }, (_, i) => `${150 + i}`));
  client.send({ type: 'ping' });
  only(await client.next(), 'pong');
});

function replayedIds(frames: readonly ServerMessage[]): string[] {
  return changeFrames(frames).flatMap((frame) => frame.changes.map((change) => change.entityId));
}
