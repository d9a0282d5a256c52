/**
 * The PostgreSQL store against what broke it once: values PostgreSQL cannot hold, a record the
 * stamper cannot apply, a busy pool, a database restored elsewhere, shutdown while reconnecting
 * (a lost slot, and the stream's other troubles: postgres-streaming.test.ts). Real throwaway
 * cluster; each test has its own database.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { PostgresSyncStore, type PostgresStoreOptions } from '../postgres-store.ts';
import { writeRecord } from '../postgres-writes.ts';
import { StoreUnavailableError } from '../sync-store.ts';
import { eventually, postChanges, update } from './helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
import { databaseState, ModelClient, startInstance, startPartitionProxy, upsert } from './postgres-helpers.ts';

const BOUNDED = { timeout: 60_000 };

let cluster: PostgresCluster;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

/** Resolves once a session of the database at `url` waits on a lock (a write blocked by another transaction). */
async function waitingOnLock(t: { after(fn: () => Promise<void>): void }, url: string): Promise<void> {
  const watcher = await connect(t, url);
  const database = new URL(url).pathname.slice(1);
  await eventually(async () => (await watcher.query(
    "SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [database])).rows.length > 0, 10_000, 'a write waiting on the lock');
}

async function connect(t: { after(fn: () => Promise<void>): void }, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.after(() => client.end());
  return client;
}

test('values PostgreSQL cannot hold are refused for good when written, and later writes still flow', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const server = await startInstance(t, url);
  const client = await ModelClient.open(t, server);
  const refused: Record<string, unknown> = {
    'nul-entity-id': upsert('nul-entity-id', 'a\u0000b', 1),
    'nul-entity-type': { type: 'operation', operation: { id: 'nul-entity-type', type: 'upsert', payload: { entityType: 'it\u0000em', entityId: 'x', data: 1 } } },
    'nul\u0000id': upsert('nul\u0000id', 'x', 1),
    'lone-surrogate': upsert('lone-surrogate', 'a\uD800', 1),
    [`long-${'x'.repeat(3000)}`]: upsert(`long-${'x'.repeat(3000)}`, 'x', 1),
  };
  for (const frame of Object.values(refused)) client.send(frame);
  await client.until(() => client.operationErrors.size === Object.keys(refused).length, 10_000, 'an operation_error for each');
  for (const id of Object.keys(refused)) {
    assert.ok(client.operationErrors.has(id), `${JSON.stringify(id.slice(0, 20))} was answered with operation_error`);
    assert.ok(!client.retryable.has(id), `${JSON.stringify(id.slice(0, 20))} is refused for good (no retryable)`);
  }
  assert.match(client.operationErrors.get('nul-entity-id')!, /NUL/, 'the error says why');
  const posted = await postChanges(server.url, [update('item', 'nul\u0000', 1)]);
  assert.equal(posted.status, 400, `an HTTP write with a NUL in an id is refused with 400 (${JSON.stringify(posted.body)})`);

  // Data is kept as json text: a NUL or a lone surrogate inside it is stored and comes back as sent.
  const odd = { text: 'a\u0000b', lone: 'x\uDC00y' };
  client.send(upsert('odd-data', 'odd', odd));
  client.send(upsert('after', 'fine', 1));
  await client.until(() => client.acks.has('odd-data') && client.acks.has('after'), 10_000, 'later writes acknowledged');
  const db = await databaseState(url);
  assert.equal(db.lsns.length, 2, 'only the two accepted writes were stored');
  assert.deepEqual(client.entities.get('item/odd'), odd, 'the data came back unchanged');
  assert.deepEqual(client.entities, db.entities, 'the client holds the database\'s entities');
});

test('a record the stamper cannot apply is logged as refused: its writer gets a final operation_error and later writes flow', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const server = await startInstance(t, url);
  const client = await ModelClient.open(t, server);
  // Written past the store's own checks (as an older server would have): a NUL in an entity id.
  const admin = await connect(t, url);
  await writeRecord(admin, { writeId: randomUUID(), operationId: 'poison', changes: [update('item', 'a\u0000b', 1)] });
  await writeRecord(admin, { writeId: randomUUID(), changes: [update('item', 'beside', 1)] });
  client.send(upsert('poison', 'again', 2));
  client.send(upsert('next', 'next', 3));
  await client.until(() => client.operationErrors.has('poison') && client.acks.has('next'), 15_000, 'the poisoned write refused and the next one acknowledged');
  assert.ok(!client.retryable.has('poison'), 'refused for good');
  assert.match(client.operationErrors.get('poison')!, /could not apply/, `says why (${client.operationErrors.get('poison')})`);
  const refused = await admin.query<{ operation_id: string | null; change_count: number }>('SELECT operation_id, change_count FROM sync_change_log WHERE refused IS NOT NULL');
  assert.deepEqual(refused.rows, [{ operation_id: 'poison', change_count: 0 }], 'one refused record, without changes');
  const db = await databaseState(url);
  await client.reach(db.head);
  assert.deepEqual([...client.entities.keys()].sort(), ['item/beside', 'item/next'], 'the writes beside it were applied');
  assert.deepEqual(client.entities, db.entities, 'the client holds the database\'s entities');
});

async function openStore(t: { after(fn: () => Promise<void>): void }, url: string, options: PostgresStoreOptions): Promise<PostgresSyncStore> {
  const store = await PostgresSyncStore.open(url, options);
  t.after(() => store.close());
  return store;
}

test('a busy pool is not an outage: a write that waited too long for a connection is deferred, the instance stays available', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const store = await openStore(t, url, { poolSize: 1, connectionTimeout: 500, pollInterval: 100 });
  const availability: (Error | undefined)[] = [];
  store.onAvailability((error) => availability.push(error));
  // Another transaction holds operation id 'held': the store's only pooled connection waits on it.
  const admin = await connect(t, url);
  await admin.query('BEGIN');
  await admin.query('INSERT INTO sync_writes (write_id, operation_id) VALUES ($1, $2)', [randomUUID(), 'held']);
  const held = store.append([update('item', 'held', 1)], 'held');
  await waitingOnLock(t, url);
  await assert.rejects(store.append([update('item', 'other', 1)], 'other'), (error: unknown) => {
    assert.ok(error instanceof StoreUnavailableError, `retryable (${String(error)})`);
    assert.match(error.message, /busy/, 'says the database is busy');
    return true;
  }, 'the write that found no free connection is deferred');
  assert.equal(store.unavailable, undefined, 'the instance did not mark itself unavailable');
  assert.deepEqual(availability, [], 'nobody was told of an outage');
  await admin.query('ROLLBACK');
  const first = await held;
  assert.equal(first.duplicate, false, 'the held write went through once the other transaction ended');
  const second = await store.append([update('item', 'other', 1)], 'other');
  assert.ok(second.position > first.position, 'and the deferred one, sent again, after it');
});

test('a partitioned stamper: its session is ended by the server, another instance stamps, and it marks itself unavailable and recovers', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const proxy = await startPartitionProxy(t, cluster.socketPath);
  const fast = { pollInterval: 100, retryInterval: 100, queryTimeout: 1000, connectionTimeout: 1000 };
  const far = await openStore(t, proxy.url(url), { ...fast, idleSessionTimeout: 2000 });
  await eventually(() => far.isStamper, 5000, 'the instance behind the proxy stamps');
  const near = await openStore(t, url, fast);
  const before = await far.append([update('item', 'before', 1)]);
  proxy.partition();
  // Nothing closes: only the server's own limits end the far session and free the stamper lock.
  const during = await near.append([update('item', 'during', 1)]);
  assert.ok(during.position > before.position, 'a write through the other instance is stamped during the partition');
  assert.ok(near.isStamper, 'the other instance took the stamper role over');
  await eventually(() => far.unavailable !== undefined, 5000, 'the partitioned instance marks itself unavailable');
  await assert.rejects(far.append([update('item', 'refused', 1)]), StoreUnavailableError, 'and defers writes meanwhile');
  proxy.heal();
  await eventually(() => far.unavailable === undefined && far.headPosition >= during.position, 10_000, 'it recovers and catches up');
  const after = await far.append([update('item', 'after', 1)]);
  assert.ok(after.position > during.position, 'and writes again');
});

test('close() while the store is reconnecting ends the session that connects after it', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const proxy = await startPartitionProxy(t, cluster.socketPath);
  const store = await PostgresSyncStore.open(proxy.url(url), { pollInterval: 100, retryInterval: 100, queryTimeout: 1000, connectionTimeout: 5000 });
  await store.append([update('item', 'a', 1)]);
  proxy.partition();
  await eventually(() => store.unavailable !== undefined, 5000, 'unavailable');
  // Close while a reconnect attempt is held by the partition, then let it through.
  await eventually(() => proxy.held() > 0, 5000, 'a reconnect attempt held by the partition');
  await store.close();
  const admin = await connect(t, cluster.url());
  const database = new URL(url).pathname.slice(1);
  const healed = (await admin.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
  proxy.heal();
  // Connections cut by the partition linger at the proxy; what matters is one made after it.
  const lateSessions = async () => (await admin.query(
    'SELECT pid FROM pg_stat_activity WHERE datname = $1 AND backend_start >= $2', [database, healed])).rows.length;
  await eventually(() => proxy.healedOpen() === 0, 10_000, 'the connection let through after the partition closed');
  assert.equal(await lateSessions(), 0, 'the connection that completed after close() was ended');
});

test('a change log ahead of the cluster\'s write-ahead log (a database restored elsewhere) is refused at start', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const first = await PostgresSyncStore.open(url);
  await first.close();
  const admin = await connect(t, url);
  await admin.query(`INSERT INTO sync_change_log (lsn, write_id, changes, change_count) VALUES ('FFFF/0', $1, '[]', 0)`, [randomUUID()]);
  await assert.rejects(PostgresSyncStore.open(url), /change log ends at FFFF\/0, ahead of this cluster's write-ahead log/, 'refuses and says why');
});

test('one client\'s writes commit in the order it sent them, even when the first waits in the database', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const store = await openStore(t, url, { pollInterval: 100 });
  // Another transaction holds operation id 'first': its write waits on that row lock.
  const admin = await connect(t, url);
  await admin.query('BEGIN');
  await admin.query('INSERT INTO sync_writes (write_id, operation_id) VALUES ($1, $2)', [randomUUID(), 'first']);
  const client = {};
  const upserted = store.append([update('item', 'x', 1)], 'first', client);
  const removed = store.append([{ type: 'delete', entityType: 'item', entityId: 'x' }], 'second', client);
  let removedEarly = false;
  void removed.then(() => { removedEarly = true; }, () => undefined);
  await waitingOnLock(t, url);
  // Another client's write goes through meanwhile: a delete not held back would have too.
  const fence = await store.append([update('item', 'fence', 1)], 'fence', {});
  assert.ok(fence.position > 0n, 'the database takes other writes meanwhile');
  assert.equal(removedEarly, false, 'the delete waits for the upsert sent before it');
  await admin.query('ROLLBACK');
  const [first, second] = await Promise.all([upserted, removed]);
  assert.ok(second.position > first.position, `the delete (${second.lsn}) after the upsert (${first.lsn})`);
  const { entities } = await store.entities({ limit: 1000 });
  assert.deepEqual(entities.filter((entity) => entity.entityId === 'x'), [], 'the entity ends deleted, as the client meant');
});
