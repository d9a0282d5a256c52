/**
 * Several server instances on one PostgreSQL: real clusters (started here, as a non-root user,
 * with wal_level=logical), real sockets. Each test has its own database.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { compareLSN, parseLSN } from '../../src/protocol/lsn.ts';
import { PostgresSyncStore } from '../postgres-store.ts';
import { writeRecord } from '../postgres-writes.ts';
import { createSyncServer } from '../sync-server.ts';
import { eventually, getJson, postChanges, startCli, update } from './helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
import { databaseState, ModelClient, remove, stamperPid, startInstance, upsert } from './postgres-helpers.ts';

const BOUNDED = { timeout: 60_000 };

let cluster: PostgresCluster;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

test('three instances, clients on each, writers through all three: every client ends with the database\'s entities and LSN', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const instances = [await startInstance(t, url), await startInstance(t, url), await startInstance(t, url)];
  const clients = await Promise.all([0, 1, 2, 0, 1, 2].map((i) => ModelClient.open(t, instances[i]!)));
  const writers = clients.slice(0, 3);
  const perWriter = 80;
  // Ten shared ids, written by everyone at once: the final value of each depends on commit order.
  for (let n = 0; n < perWriter; n += 1) {
    for (const [w, writer] of writers.entries()) {
      const entityId = String((n * 3 + w) % 10);
      writer.send(n % 7 === 6 ? remove(`w${w}-${n}`, entityId) : upsert(`w${w}-${n}`, entityId, { writer: w, n }));
    }
  }
  // And HTTP writes of several changes in one record, through every instance.
  const posted = await Promise.all(instances.map((instance, i) =>
    postChanges(instance.url, [update('item', String(i), { posted: i }), update('other', `p${i}`, { i })])));
  assert.deepEqual(posted.map((p) => p.status), [200, 200, 200], 'the HTTP writes were accepted');
  for (const writer of writers) await writer.until(() => writer.acks.size === perWriter, 30_000, 'every acknowledgement');

  const db = await databaseState(url);
  assert.equal(db.lsns.length, writers.length * perWriter + 3, 'one record per write');
  for (const [i, client] of clients.entries()) {
    await client.reach(db.head);
    assert.equal(client.lsn, db.head, `client ${i} ends at the database's LSN`);
    assert.deepEqual(client.entities, db.entities, `client ${i} holds the database's entities`);
    assert.deepEqual(client.changes, db.changes, `client ${i} got every change once, in commit order`);
    assert.ok(client.applied.every((lsn) => db.lsns.includes(lsn)), `client ${i} was sent record LSNs only`);
    assert.deepEqual(client.repeats, [], `client ${i} was sent nothing twice`);
    assert.equal(client.operationErrors.size, 0, `client ${i} got no operation_error`);
  }
  for (const writer of writers) {
    for (const lsn of writer.acks.values()) assert.ok(lsn !== undefined && db.lsns.includes(lsn), `acknowledged LSN ${lsn} is a record's`);
  }
  const entities = await getJson(`${instances[2]!.url}/api/entities`);
  assert.equal(entities.lsn, db.head, '/api/entities answers the same snapshot');
  assert.equal((entities.entities as unknown[]).length, db.entities.size);
});

test('a transaction that started first but commits last reaches clients after the one that committed first, with a higher LSN', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const [one, two] = [await startInstance(t, url), await startInstance(t, url)];
  const onOne = await ModelClient.open(t, one);
  const onTwo = await ModelClient.open(t, two);
  const first = new pg.Client({ connectionString: url });
  const second = new pg.Client({ connectionString: url });
  await Promise.all([first.connect(), second.connect()]);
  t.after(async () => {
    await first.end();
    await second.end();
  });
  const lsnNow = async () => (await second.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;

  // A begins and writes first (with a serial id it would get the lower one) ...
  await first.query('BEGIN');
  await writeRecord(first, { writeId: randomUUID(), changes: [update('item', 'a', { by: 'A' })] });
  // ... B begins later and commits first.
  await second.query('BEGIN');
  await writeRecord(second, { writeId: randomUUID(), changes: [update('item', 'b', { by: 'B' })] });
  const beforeB = await lsnNow();
  await second.query('COMMIT');
  const afterB = await lsnNow();
  await Promise.all([onOne, onTwo].map((client) => client.until(() => client.applied.length === 1, 10_000, 'B')));
  for (const client of [onOne, onTwo]) {
    assert.deepEqual([...client.entities.keys()], ['item/b'], 'B arrives while A is still open');
    const lsnB = client.applied[0]!;
    assert.ok(compareLSN(lsnB, beforeB) > 0 && compareLSN(lsnB, afterB) <= 0, `B's LSN ${lsnB} is its commit's (${beforeB}, ${afterB}]`);
  }

  await first.query('COMMIT');
  const afterA = await lsnNow();
  await Promise.all([onOne, onTwo].map((client) => client.until(() => client.applied.length === 2, 10_000, 'A')));
  const db = await databaseState(url);
  for (const client of [onOne, onTwo]) {
    assert.deepEqual(client.applied, db.lsns, 'both records, B then A');
    assert.ok(compareLSN(client.applied[1]!, client.applied[0]!) > 0, 'A\'s LSN is above B\'s');
    assert.ok(compareLSN(client.applied[1]!, afterA) <= 0, 'A\'s LSN is its commit\'s');
    assert.deepEqual(client.entities, db.entities, 'nothing skipped');
    assert.deepEqual(client.repeats, [], 'nothing repeated');
  }
  // A client that joins now from B's LSN gets A: catch-up reads the same log.
  const late = await ModelClient.open(t, two, onOne.applied[0]!);
  assert.deepEqual(late.applied, [onOne.applied[1]], 'catch-up from B\'s LSN replays A');
});

test('one client\'s operations sent together commit together, each with its own LSN, in the order sent', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const [one, two] = [await startInstance(t, url), await startInstance(t, url)];
  const writer = await ModelClient.open(t, one);
  const reader = await ModelClient.open(t, two);
  const ids = Array.from({ length: 60 }, (_, n) => `together-${n}`);
  // Every third one deletes what the one before upserted: out of order, it would leave it behind.
  for (const [n, id] of ids.entries()) writer.send(n % 3 === 2 ? remove(id, String(n - 1)) : upsert(id, String(n), { n }));
  await writer.until(() => writer.acks.size === ids.length, 20_000, 'every acknowledgement');
  const acked = ids.map((id) => writer.acks.get(id)!);
  for (let i = 1; i < acked.length; i += 1) assert.ok(compareLSN(acked[i]!, acked[i - 1]!) > 0, `acknowledged in the order sent (${acked[i - 1]} then ${acked[i]})`);
  const positions = acked.map((lsn) => parseLSN(lsn)!);
  const together = positions.filter((position, i) => i > 0 && position - positions[i - 1]! === 1n).length;
  assert.ok(together > 0, 'some were written in one transaction (their records are next to each other in its commit record)');
  const db = await databaseState(url);
  assert.deepEqual(db.lsns, acked, 'one record per operation, at the acknowledged LSNs');
  await reader.reach(db.head);
  assert.deepEqual(reader.entities, db.entities, 'the other instance\'s client holds the database\'s entities');
  assert.deepEqual([...reader.entities.keys()].sort(), ids.flatMap((_, n) => (n % 3 === 0 ? [`item/${n}`] : [])).sort(), 'each upsert deleted after it is gone');
});

test('a client moved to another instance mid-stream resumes there without gaps or repeats', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  // Small stamp passes, and stamping held once the moving client has part of the stream: the move
  // happens mid-stream however fast the machine is.
  let moving: ModelClient | undefined;
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const afterStamp = async () => {
    if (moving && moving.changes.length >= 40) await released;
  };
  const instance = async () => {
    const store = await PostgresSyncStore.open(url, { stampLimit: 30, afterStamp });
    const server = await startInstance(t, url, { store });
    t.after(() => store.close());
    return server;
  };
  const [one, two, three] = [await instance(), await instance(), await instance()];
  const writer = await ModelClient.open(t, three);
  moving = await ModelClient.open(t, one);
  const total = 300;
  for (let n = 0; n < total; n += 1) writer.send(upsert(`s-${n}`, String(n % 25), { n }));
  await moving.until(() => moving!.changes.length >= 40, 20_000, 'part of the stream');
  moving.socket.terminate();
  const before = { changes: [...moving.changes], lsn: moving.lsn, entities: moving.entities };
  assert.ok(writer.acks.size < total, `the stream was still going (${writer.acks.size} of ${total} acknowledged)`);

  const moved = await ModelClient.open(t, two, before.lsn, before);
  release();
  await writer.until(() => writer.acks.size === total, 30_000, 'every acknowledgement');
  const db = await databaseState(url);
  await moved.reach(db.head);
  assert.deepEqual([...before.changes, ...moved.changes], db.changes, 'every change once, in order, across both instances');
  assert.deepEqual(moved.repeats, [], 'nothing resent');
  assert.deepEqual(moved.entities, db.entities, 'the moved client holds the database\'s entities');
});

test('a repeated operation id through two instances is applied once and answered with one LSN', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const [one, two] = [await startInstance(t, url), await startInstance(t, url)];
  const a = await ModelClient.open(t, one);
  const b = await ModelClient.open(t, two);
  // The same operation through both at once, several times over (the same payload: another one
  // under the same id would be refused as a reused id).
  for (let round = 0; round < 5; round += 1) {
    a.send(upsert('once', 'counter', { round: 1 }));
    b.send(upsert('once', 'counter', { round: 1 }));
  }
  await a.until(() => a.acks.has('once'), 10_000, 'the answer on one');
  await b.until(() => b.acks.has('once'), 10_000, 'the answer on two');
  assert.equal(a.acks.get('once'), b.acks.get('once'), 'one LSN for both');
  let db = await databaseState(url);
  assert.equal(db.lsns.length, 1, 'one record');
  // Again after the instance that wrote it is gone, through a new one.
  await one.close();
  const three = await startInstance(t, url);
  const c = await ModelClient.open(t, three, db.head);
  c.send(upsert('once', 'counter', { round: 1 }));
  await c.until(() => c.acks.has('once'), 10_000, 'the answer on a new instance');
  assert.equal(c.acks.get('once'), a.acks.get('once'), 'the same LSN again');
  db = await databaseState(url);
  assert.equal(db.lsns.length, 1, 'still one record');
  const stats = await getJson(`${three.url}/api/stats`);
  assert.equal(stats.operationsApplied, 1, 'one operation applied');
  assert.deepEqual(c.applied, [], 'nothing new was broadcast');
});

test('bad input through a PostgreSQL instance gets a clear error and stores nothing', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const server = await startInstance(t, url);
  const client = await ModelClient.open(t, server);
  client.send({ type: 'operation', operation: { id: 'bad', type: 'explode', payload: {} } });
  client.send({ type: 'operation', operation: { id: 'worse', type: 'upsert', payload: { entityType: 'item' } } });
  await client.until(() => client.operationErrors.size === 2, 10_000, 'two operation_error');
  assert.match(client.operationErrors.get('bad')!, /unknown operation type/, 'says why');
  const posted = await postChanges(server.url, [{ type: 'update', entityType: 'x' }]);
  assert.equal(posted.status, 400, 'an invalid HTTP change is refused');
  assert.deepEqual((await databaseState(url)).lsns, [], 'nothing was stored');
  client.send(upsert('good', 'fine', 1));
  await client.until(() => client.acks.has('good'), 10_000, 'a good operation still goes through');
});

test('a stamp repeated after a crash before the slot moved on adds nothing twice', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  let crashes = 0;
  const store = await PostgresSyncStore.open(url, {
    pollInterval: 100,
    afterStamp: () => {
      if (crashes < 3) {
        crashes += 1;
        throw new Error('simulated crash between the stamp and the slot advance');
      }
    },
  });
  t.after(() => store.close());
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);
  process.on('warning', onWarning);
  t.after(() => {
    process.off('warning', onWarning);
  });
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, store });
  t.after(() => server.close());
  const client = await ModelClient.open(t, server);
  for (let n = 0; n < 20; n += 1) client.send(upsert(`c-${n}`, String(n % 4), { n }));
  await client.until(() => client.acks.size === 20, 20_000, 'every acknowledgement');
  const db = await databaseState(url);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.after(() => admin.end());
  await eventually(async () => {
    const slot = await admin.query<{ behind: boolean }>('SELECT confirmed_flush_lsn < $1::pg_lsn AS behind FROM pg_replication_slots WHERE database = current_database()', [db.head]);
    return crashes === 3 && slot.rows[0]?.behind === false;
  }, 10_000, 'three crashes, then the slot advanced past the log\'s head');
  assert.equal(db.lsns.length, 20, 'each write is one record');
  assert.deepEqual(client.changes, db.changes, 'the client got each change once');
  assert.deepEqual(client.entities, db.entities);
  assert.ok(warnings.some((w) => w.includes('simulated crash')), 'the failed passes were reported');
});

test('instances killed or stopped and started again keep serving; the stamper role moves on', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  let a = await startCli(t, ['--store', url]);
  let b = await startCli(t, [], { env: { SYNC_STORE: url } });
  let watcher = await ModelClient.open(t, a);
  let client = await ModelClient.open(t, b);
  const write = async (id: string) => {
    client.send(upsert(id, 'x', id));
    await client.until(() => client.acks.has(id), 15_000, `the answer to ${id}`);
    await watcher.reach(client.acks.get(id)!);
  };
  await write('r-0');

  // SIGKILL the client's instance: the client reconnects to its replacement and resumes.
  b.child.kill('SIGKILL');
  await b.exited;
  b = await startCli(t, ['--store', url]);
  client = await ModelClient.open(t, b, client.lsn, client);
  await write('r-1');

  // SIGTERM whichever instance stamps: the other one takes the role over and writes go on.
  const stamper = await stamperPid(url);
  assert.ok(stamper === a.pid || stamper === b.pid, `one of the instances stamps (${stamper})`);
  const [leaving, staying] = stamper === a.pid ? [a, b] : [b, a];
  leaving.child.kill('SIGTERM');
  assert.deepEqual(await leaving.exited, { code: 0, signal: null }, 'a clean exit');
  if (leaving === a) {
    watcher.socket.terminate();
  } else {
    client.socket.terminate();
    client = await ModelClient.open(t, staying, client.lsn, client);
  }
  client.send(upsert('r-2', 'x', 'r-2'));
  await client.until(() => client.acks.has('r-2'), 15_000, 'an answer with the stamper gone');
  assert.equal(await stamperPid(url), staying.pid, 'the remaining instance stamps now');
  const restarted = await startCli(t, ['--store', url]);
  if (leaving === a) {
    a = restarted;
    watcher = await ModelClient.open(t, a, watcher.lsn, watcher);
  } else {
    b = restarted;
    watcher.socket.terminate();
    watcher = await ModelClient.open(t, b, watcher.lsn, watcher);
  }
  await write('r-3');

  const db = await databaseState(url);
  assert.equal(db.lsns.length, 4, 'one record per operation');
  for (const model of [client, watcher]) {
    await model.reach(db.head);
    assert.deepEqual(model.entities, db.entities, 'the client holds the database\'s entities');
    assert.deepEqual(model.repeats, [], 'nothing resent');
  }
});

test('losing the database: operations get a clear operation_error, clients stay, and all resumes when it is back', BOUNDED, async (t) => {
  // Its own cluster: this test stops it.
  const own = await startPostgresCluster();
  t.after(() => own.destroy());
  const url = await own.createDatabase();
  const availability: (string | undefined)[] = [];
  const [one, two] = [
    await startInstance(t, url, { onStoreAvailability: (error) => availability.push(error?.message) }),
    await startInstance(t, url),
  ];
  const writer = await ModelClient.open(t, one);
  const reader = await ModelClient.open(t, two);
  writer.send(upsert('before', 'a', 1));
  await writer.until(() => writer.acks.has('before'), 10_000, 'a write before the outage');

  await own.stop();
  writer.send(upsert('during', 'b', 2));
  await writer.until(() => writer.operationErrors.has('during'), 10_000, 'operation_error while the database is down');
  assert.match(writer.operationErrors.get('during')!, /not applied: the database is unavailable .*nothing was stored/, 'the error says what happened');
  assert.ok(writer.retryable.has('during'), 'the error says the operation can be sent again (retryable)');
  const posted = await postChanges(two.url, [update('item', 'c', 3)]);
  assert.equal(posted.status, 503, 'an HTTP write is refused with 503');
  await eventually(() => availability.length >= 1, 10_000, 'the server told the store is unavailable');
  assert.ok(availability[0] !== undefined, 'the server was told the store is unavailable');
  // Answered after the server knew: it kept both clients (and they were not closed meanwhile).
  const pongs = [writer.pongs, reader.pongs];
  writer.send({ type: 'ping' });
  reader.send({ type: 'ping' });
  await writer.until(() => writer.pongs > pongs[0]!, 5000, 'pong from the writer\'s instance');
  await reader.until(() => reader.pongs > pongs[1]!, 5000, 'pong from the reader\'s instance');
  assert.ok(!writer.closed && !reader.closed, 'both clients are still connected');
  // A client that syncs meanwhile waits for the database rather than failing.
  const joining = ModelClient.open(t, two);

  await own.start();
  const late = await joining;
  const retry = async () => {
    writer.operationErrors.delete('during');
    writer.send(upsert('during', 'b', 2));
    await writer.until(() => writer.acks.has('during') || writer.operationErrors.has('during'), 10_000, 'an answer');
    return writer.acks.has('during');
  };
  const deadline = Date.now() + 20_000;
  while (!(await retry())) {
    assert.ok(Date.now() < deadline, 'the instance accepts operations again');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(availability.at(-1), undefined, 'the server was told the store is back');
  const db = await databaseState(url);
  assert.equal(db.lsns.length, 2, 'the two applied writes, nothing from the outage twice');
  for (const client of [writer, reader, late]) {
    await client.reach(db.head);
    assert.deepEqual(client.entities, db.entities, 'every client, also one that synced during the outage, holds the database\'s entities');
  }
});

test('a server whose database cannot be reached, or is not a PostgreSQL URL, refuses to start and says why', BOUNDED, async (t) => {
  const unreachable = startCli(t, ['--store', 'postgres://sync:secret@127.0.0.1:1/nowhere']);
  await assert.rejects(unreachable, /cannot reach PostgreSQL at postgres:\/\/sync:\*\*\*@127\.0\.0\.1:1\/nowhere/, 'names the database, not its password');
  await assert.rejects(startCli(t, ['--store', 'mysql://x']), /--store must be a postgres:\/\/ or postgresql:\/\/ URL/);
});
