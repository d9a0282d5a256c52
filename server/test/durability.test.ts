/**
 * What the reference server keeps: the log across a restart (a torn last record cut), operation
 * ids across a restart, every acknowledged change across a close, and nothing unacknowledged when
 * the disk fails.
 */
import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareLSN } from '../../src/protocol/lsn.ts';
import { FileSyncStore } from '../store.ts';
import {
  changeFrames,
  diskThatFills,
  framesUntilClosed,
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

test('the log survives a restart, also with a torn last record', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const first = await startServer(t, { dataDir });
  await postChanges(first.url, [update('doc', '1', { v: 1 })]);
  const { body } = await postChanges(first.url, [update('doc', '2', { v: 2 })]);
  await first.close();
  await appendFile(join(dataDir, 'sync.log'), '{"changes":[{"type":"upd');

  const second = await startServer(t, { dataDir });
  const entities = await getJson(`${second.url}/api/entities`);
  assert.equal(entities.lsn, body.lsn);
  assert.deepEqual(entities.entities, [
    { entityType: 'doc', entityId: '1', data: { v: 1 } },
    { entityType: 'doc', entityId: '2', data: { v: 2 } },
  ]);
  const client = await TestClient.open(wsUrl(second), t);
  const replayed = changeFrames(await client.sync('0/0')).flatMap((b) => b.changes);
  assert.deepEqual(replayed.map((c) => c.entityId), ['1', '2']);
  const { body: next } = await postChanges(second.url, [update('doc', '3', { v: 3 })]);
  assert.ok(compareLSN(String(next.lsn), String(body.lsn)) > 0, 'LSNs keep increasing after a restart');
});

test('a repeated operation id is answered again and applied once, also across a restart', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const first = await startServer(t, { dataDir });
  const client = await TestClient.open(wsUrl(first), t);
  await client.sync('0/0');
  client.send(upsert('op-1', 't1', { title: 'first' }));
  const live = only(await client.next(), 'changes');
  const done = only(await client.next(), 'operation_complete');
  assert.equal(done.id, 'op-1');
  assert.equal(done.lsn, live.lsn);
  assert.equal(typeof live.changes[0]!.timestamp, 'number');

  client.send(upsert('op-1', 't1', { title: 'first' }));
  assert.deepEqual(only(await client.next(), 'operation_complete'), done);
  await first.close();

  const second = await startServer(t, { dataDir });
  const again = await TestClient.open(wsUrl(second), t);
  await again.sync(String(done.lsn));
  again.send(upsert('op-1', 't1', { title: 'first' }));
  assert.deepEqual(only(await again.next(), 'operation_complete'), done);
  const stats = await getJson(`${second.url}/api/stats`);
  assert.equal(stats.records, 1);
  assert.equal(stats.operationsApplied, 1);
  assert.equal(stats.operationFramesReceived, 1);
});

test('close answers what is durable, closes sockets with 1001 and keeps every acknowledged change', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const server = await startServer(t, { dataDir });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  for (let i = 0; i < 50; i += 1) client.send(upsert(`c-${i}`, `c-${i}`, i));
  const acknowledged: string[] = [];
  while (acknowledged.length < 10) {
    const frame = await client.next();
    if (frame.type === 'operation_complete') acknowledged.push(frame.id);
  }
  const closing = server.close();
  const { code } = await client.closed;
  await closing;
  assert.equal(code, 1001);

  const reopened = await startServer(t, { dataDir });
  const ids = ((await getJson(`${reopened.url}/api/entities`)).entities as { entityId: string }[]).map((e) => e.entityId);
  for (const id of acknowledged) assert.ok(ids.includes(id), `${id} was acknowledged and kept`);
});

test('a disk error closes every socket with 1011, refuses new ones and writes, and acknowledges nothing unstored', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const disk = diskThatFills();
  const { store } = await FileSyncStore.open(dataDir, { openFile: disk.openFile });
  const failures: Error[] = [];
  const server = await startServer(t, { store, onStoreFailure: (error) => failures.push(error) });
  t.after(() => store.close());
  const writer = await TestClient.open(wsUrl(server), t);
  const watcher = await TestClient.open(wsUrl(server), t);
  await writer.sync('0/0');
  await watcher.sync('0/0');
  writer.send(upsert('stored', 'a', 1));
  const stored = only((await writer.until('operation_complete')).at(-1)!, 'operation_complete');
  only(await watcher.next(), 'changes');

  disk.fillDisk();
  writer.send(upsert('lost-1', 'b', 2));
  writer.send(upsert('lost-2', 'c', 3));
  const written = await framesUntilClosed(writer);
  const watched = await framesUntilClosed(watcher);
  assert.deepEqual(written.frames, [], 'the writer got no answer: no ack, no generic error');
  assert.deepEqual(watched.frames, [], 'the watcher got nothing undurable');
  assert.deepEqual(written.closed, { code: 1011, reason: 'store unavailable' }, 'the writer was closed with 1011');
  assert.deepEqual(watched.closed, { code: 1011, reason: 'store unavailable' }, 'so was every other client');
  assert.equal(failures.length, 1, 'onStoreFailure was called once');
  assert.match(failures[0]!.message, /ENOSPC/, 'with the disk error');

  const late = await TestClient.open(wsUrl(server), t);
  const refused = await framesUntilClosed(late);
  assert.deepEqual(refused.closed, { code: 1011, reason: 'store unavailable' }, 'a new socket is refused the same way');
  const posted = await postChanges(server.url, [update('task', 'posted', 1)]);
  assert.equal(posted.status, 503, 'a POST is refused with 503');
  assert.match(String(posted.body.error), /store unavailable/, 'saying why');
  assert.equal((await server.stats()).records, 1, 'only the stored record counts');
  await server.close();
  await store.close();

  // A restarted server reads back what was durable; the re-sent operations are applied once.
  const second = await startServer(t, { dataDir });
  const client = await TestClient.open(wsUrl(second), t);
  const replayed = changeFrames(await client.sync('0/0')).flatMap((frame) => frame.changes.map((c) => c.entityId));
  assert.deepEqual(replayed, ['a'], 'nothing unacknowledged was kept');
  client.send(upsert('stored', 'a', 1));
  assert.deepEqual(only(await client.next(), 'operation_complete'), stored, 'the stored one keeps its answer');
  client.send(upsert('lost-1', 'b', 2));
  only(await client.next(), 'changes');
  assert.equal(only(await client.next(), 'operation_complete').id, 'lost-1', 'a lost one is applied when re-sent');
});
