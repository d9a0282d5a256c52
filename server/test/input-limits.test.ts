/**
 * Limits on what one write may hold: each over-limit write is refused for good (a final
 * operation_error, or HTTP 400) with a message that names the limit, before it reaches the store;
 * a poison operation never closes its socket and never blocks the operations behind it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import { DEFAULT_LIMITS } from '../limits.ts';
import { getJson, postChanges, rssMiB, startCli, startServer, tempDir, TestClient, update, watchRss, wsUrl } from './helpers.ts';

const BOUNDED = { timeout: 30_000 };

function operation(id: string, type: string, payload: unknown) {
  return { type: 'operation', operation: { id, type, payload } };
}

function upsert(id: string, entityId: string, data: unknown, entityType = 'task') {
  return operation(id, 'upsert', { entityType, entityId, data });
}

/** `[[[...]]]` nested `depth` levels deep. */
function nested(depth: number): unknown {
  return JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`);
}

async function answers(client: TestClient, ids: readonly string[]): Promise<Map<string, ServerMessage>> {
  const byId = new Map<string, ServerMessage>();
  while (ids.some((id) => !byId.has(id))) {
    const frame = await client.next(10_000);
    if (frame.type === 'operation_complete' || frame.type === 'operation_error') byId.set(frame.id, frame);
  }
  return byId;
}

test('each over-limit operation gets a final operation_error naming its limit; the socket stays open and the next one is applied', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  const limits = DEFAULT_LIMITS;
  const poison: [string, unknown, RegExp][] = [
    ['long-id', operation('x'.repeat(limits.maxOperationIdBytes + 1), 'upsert', { entityType: 't', entityId: 'a', data: 1 }), /operation id is \d+ bytes, over the limit of 256 bytes \(maxOperationIdBytes\)/],
    ['long-type', operation('long-type', 'u'.repeat(limits.maxOperationTypeBytes + 1), {}), /operation type .*maxOperationTypeBytes/],
    ['long-entity-type', upsert('long-entity-type', 'a', 1, 'T'.repeat(limits.maxEntityTypeBytes + 1)), /entityType is 129 bytes, over the limit of 128 bytes \(maxEntityTypeBytes\)/],
    ['long-entity-id', upsert('long-entity-id', 'é'.repeat(limits.maxEntityIdBytes / 2 + 1), 1), /entityId is 514 bytes, over the limit of 512 bytes \(maxEntityIdBytes\)/],
    ['deep', upsert('deep', 'd', nested(limits.maxDepth + 1)), /nested deeper than 64 levels \(limit maxDepth\)/],
    ['deep-patch', operation('deep-patch', 'patch', { entityType: 'task', entityId: 'd', data: { a: nested(limits.maxDepth) } }), /the patch is nested deeper than 64 levels/],
    ['big', upsert('big', 'b', 'x'.repeat(limits.maxChangeBytes)), /the data is \d+ bytes as JSON, over the limit of 524288 bytes \(maxChangeBytes\)/],
  ];
  for (const [, frame] of poison) client.send(frame);
  client.send(upsert('fine', 'fine', nested(limits.maxDepth)));
  const ids = poison.map(([id, frame]) => (id === 'long-id' ? (frame as { operation: { id: string } }).operation.id : id));
  const byId = await answers(client, [...ids, 'fine']);
  for (const [index, [name, , pattern]] of poison.entries()) {
    const answer = byId.get(ids[index]!);
    assert.ok(answer?.type === 'operation_error', `${name}: operation_error (${JSON.stringify(answer).slice(0, 200)})`);
    assert.equal(answer.retryable, undefined, `${name}: final`);
    assert.match(answer.message, pattern, `${name}: names the limit`);
  }
  assert.equal(byId.get('fine')?.type, 'operation_complete', 'an operation at the limits behind them is applied');
  assert.equal(client.socket.readyState, client.socket.OPEN, 'the socket is still open');
  assert.equal((await getJson(`${server.url}/api/stats`)).records, 1, 'only that one was stored');
});

test('limits can be set per server', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), limits: { maxEntityIdBytes: 8, maxDepth: 2 } });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  client.send(upsert('id9', '123456789', 1));
  client.send(upsert('depth3', 'x', [[[1]]]));
  client.send(upsert('ok', '12345678', [[1]]));
  const byId = await answers(client, ['id9', 'depth3', 'ok']);
  assert.match((byId.get('id9') as { message: string }).message, /maxEntityIdBytes/);
  assert.match((byId.get('depth3') as { message: string }).message, /maxDepth/);
  assert.equal(byId.get('ok')?.type, 'operation_complete');
});

test('over HTTP, a change over a limit is a 400 that names it, and nothing of the request is stored', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const depth = 5000;
  const body = JSON.stringify({ changes: [update('task', 'ok', 1), update('task', 'deep', 0)] })
    .replace('"data":0', `"data":${'['.repeat(depth)}${']'.repeat(depth)}`);
  const deep = await fetch(`${server.url}/api/changes`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  assert.equal(deep.status, 400, 'a deeply nested change is refused with 400, not 500');
  assert.match(String(((await deep.json()) as { error: unknown }).error), /#1: the data is nested deeper than 64 levels \(limit maxDepth\)/);
  const long = await postChanges(server.url, [update('task', 'i'.repeat(600), 1)]);
  assert.equal(long.status, 400);
  assert.match(String(long.body.error), /#0: entityId is 600 bytes, over the limit of 512 bytes \(maxEntityIdBytes\)/);
  assert.equal((await getJson(`${server.url}/api/stats`)).records, 0, 'nothing stored');
  assert.equal((await postChanges(server.url, [update('task', 'ok', 1)])).status, 200, 'a good request still goes through');
});

test('entity keys cannot collide: ("a\\0b", "c") and ("a", "b\\0c") are two entities', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  await postChanges(server.url, [update('a\u0000b', 'c', 'first'), update('a', 'b\u0000c', 'second')]);
  const entities = (await getJson(`${server.url}/api/entities`)).entities as { entityType: string; entityId: string; data: unknown }[];
  const byData = new Map(entities.map((entity) => [entity.data, [entity.entityType, entity.entityId]]));
  assert.deepEqual(byData.get('first'), ['a\u0000b', 'c']);
  assert.deepEqual(byData.get('second'), ['a', 'b\u0000c']);
  assert.equal((await getJson(`${server.url}/api/stats`)).entities, 2);
});

test('attack: frames of data nested thousands of levels deep are refused one by one; the server stays small and serving', BOUNDED, async (t) => {
  const cli = await startCli(t, ['--data-dir', await tempDir(t)]);
  const url = `ws://127.0.0.1:${cli.port}/api/sync`;
  const bystander = await TestClient.open(url, t);
  await bystander.sync('0/0');
  const attacker = await TestClient.open(url, t);
  await attacker.sync('0/0');
  const before = rssMiB(cli.pid);
  const rss = watchRss(cli.pid);
  // About 10 KB each: 4,110+ levels overflowed the stack of the JSON writer once.
  const depth = 5000;
  const frame = JSON.stringify(upsert('deep-0', 'd', 0)).replace('"data":0', `"data":${'['.repeat(depth)}${']'.repeat(depth)}`);
  const rounds = 200;
  for (let i = 0; i < rounds; i += 1) attacker.send(frame.replace('deep-0', `deep-${i}`));
  attacker.send(upsert('behind', 'behind', 1));
  // Meanwhile a bystander is answered.
  bystander.send(upsert('bystander', 'b', 1));
  const seen = await answers(bystander, ['bystander']);
  assert.equal(seen.get('bystander')?.type, 'operation_complete', 'the bystander is served during the attack');
  const byId = await answers(attacker, [...Array.from({ length: rounds }, (_, i) => `deep-${i}`), 'behind']);
  const peak = rss.stop();
  for (let i = 0; i < rounds; i += 1) {
    const answer = byId.get(`deep-${i}`);
    assert.ok(answer?.type === 'operation_error' && /maxDepth/.test(answer.message), `deep-${i} refused naming maxDepth`);
  }
  assert.equal(byId.get('behind')?.type, 'operation_complete', 'the operation pipelined behind them is applied');
  assert.equal(attacker.socket.readyState, attacker.socket.OPEN, 'the attacker\'s socket was not closed as "store unavailable"');
  assert.ok(peak - before < 100, `RSS grew by ${(peak - before).toFixed(0)} MiB during the attack (from ${before.toFixed(0)} MiB)`);
  assert.doesNotMatch(cli.output(), /RangeError|Maximum call stack/, 'no stack overflow anywhere');
});
