/**
 * The stamper streams its slot over a replication connection: what happens when that connection,
 * the slot, the stamper or PostgreSQL itself goes away mid-stream. Real throwaway clusters, real
 * sockets; each test has its own database.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { compareLSN } from '../../src/protocol/lsn.ts';
import { PostgresSyncStore, type PostgresStoreOptions } from '../postgres-store.ts';
import { writeRecord } from '../postgres-writes.ts';
import { createSyncServer, type SyncServer } from '../sync-server.ts';
import { eventually, startCli, update } from './helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
import { databaseState, ModelClient, remove, stamperPid, upsert } from './postgres-helpers.ts';

const BOUNDED = { timeout: 90_000 };

let cluster: PostgresCluster;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

type Hooks = { after(fn: () => Promise<void> | void): void };

async function connect(t: Hooks, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  t.after(() => client.end().catch(() => {}));
  return client;
}

/** A server on its own store, both closed when the test ends. */
async function instance(t: Hooks, url: string, options: PostgresStoreOptions): Promise<{ server: SyncServer; store: PostgresSyncStore }> {
  const store = await PostgresSyncStore.open(url, options);
  t.after(() => store.close());
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, store });
  t.after(() => server.close());
  return { server, store };
}

/** Two instances on the database at `url`, a writer on the first, a reader on the second, and an admin connection. */
async function twoInstances(t: Hooks, url: string, options: PostgresStoreOptions) {
  const one = await instance(t, url, options);
  const two = await instance(t, url, options);
  const admin = await connect(t, url);
  const writer = await ModelClient.open(t, one.server);
  const reader = await ModelClient.open(t, two.server);
  return { admin, writer, reader };
}

/** The database's replication slot as PostgreSQL reports it; undefined when there is none. */
async function slot(admin: pg.Client): Promise<{ activePid: number | null; confirmed: string } | undefined> {
  const result = await admin.query<{ active_pid: number | null; confirmed: string }>(
    'SELECT active_pid, confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE database = current_database()',
  );
  const row = result.rows[0];
  return row && { activePid: row.active_pid, confirmed: row.confirmed };
}

/**
 * Ends the stamper's replication connection from the server side, one that is not among `before`
 * (ended already: a walsender stays the slot's until it has exited); resolves with its pid.
 */
async function endStream(admin: pg.Client, before: readonly number[] = []): Promise<number> {
  let ended = 0;
  await eventually(async () => {
    const result = await admin.query<{ pid: number }>(
      `SELECT active_pid AS pid FROM pg_replication_slots WHERE database = current_database()
          AND active_pid IS NOT NULL AND active_pid <> ALL($1::int[]) AND pg_terminate_backend(active_pid)`,
      [before],
    );
    ended = result.rows[0]?.pid ?? 0;
    return ended !== 0;
  }, 10_000, 'a replication connection to end');
  return ended;
}

/**
 * Sends each operation, in order, and sends again the ones answered as retryable (as the real
 * client does), until every one is acknowledged; fails on an answer that is not retryable.
 * `deferred` counts the retryable answers.
 */
function sendUntilAcknowledged(client: ModelClient, frames: ReturnType<typeof upsert>[], ms: number): { done: Promise<void>; deferred(): number } {
  let deferred = 0;
  const done = resend(client, frames, ms, () => {
    deferred += 1;
  });
  done.catch(() => {});
  return { done, deferred: () => deferred };
}

/** The client's pause before it sends deferred operations again (the real one backs off from 1 s). */
const RETRY_DELAY_MS = 100;

async function resend(client: ModelClient, frames: ReturnType<typeof upsert>[], ms: number, onDeferred: () => void): Promise<void> {
  for (const frame of frames) client.send(frame);
  const deadline = Date.now() + ms;
  const ids = frames.map((frame) => frame.operation.id);
  for (;;) {
    const open = frames.filter((frame) => !client.acks.has(frame.operation.id));
    if (open.length === 0) return;
    assert.ok(Date.now() < deadline, `${open.length} operations still unacknowledged after ${ms} ms`);
    for (const frame of open) {
      const error = client.operationErrors.get(frame.operation.id);
      assert.ok(error === undefined || client.retryable.has(frame.operation.id), `operation ${frame.operation.id} was refused: ${error}`);
    }
    const again = open.filter((frame) => client.retryable.has(frame.operation.id));
    if (again.length > 0) {
      onDeferred();
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      for (const frame of again) {
        client.retryable.delete(frame.operation.id);
        client.operationErrors.delete(frame.operation.id);
        client.send(frame);
      }
    }
    const answered = () => ids.every((id) => client.acks.has(id)) || ids.some((id) => client.retryable.has(id));
    await client.until(answered, Math.max(1, deadline - Date.now()), 'an answer').catch(() => {});
  }
}

/** Every client holds what the database holds, got every change once and nothing twice. */
async function assertConverged(url: string, clients: readonly ModelClient[], records: number): Promise<void> {
  const db = await databaseState(url);
  assert.equal(db.lsns.length, records, 'one record per operation, none twice');
  for (const [i, client] of clients.entries()) {
    await client.reach(db.head, 20_000);
    assert.deepEqual(client.entities, db.entities, `client ${i} holds the database's entities`);
    assert.deepEqual(client.repeats, [], `client ${i} was sent nothing twice`);
  }
}

test('the replication connection lost mid-stream: the stamper follows the slot again and every write reaches every client once', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const { admin, writer, reader } = await twoInstances(t, url, { pollInterval: 100, retryInterval: 100 });
  const total = 300;
  const frames = Array.from({ length: total }, (_, n) => upsert(`lost-${n}`, String(n % 20), { n }));
  const sending = sendUntilAcknowledged(writer, frames, 60_000);
  const ended: number[] = [];
  for (const mark of [50, 150, 250]) {
    await writer.until(() => writer.acks.size >= mark, 30_000, `${mark} acknowledgements`);
    ended.push(await endStream(admin, ended));
  }
  await sending.done;
  assert.equal(sending.deferred(), 0, 'no operation was deferred: a lost stream is not an outage');
  assert.equal(ended.length, 3, 'three replication connections were ended, each a new one');
  assert.equal(writer.operationErrors.size, 0, 'no operation was refused or deferred: a lost stream is not an outage');
  await assertConverged(url, [writer, reader], total);
  const db = await databaseState(url);
  assert.deepEqual(writer.changes, db.changes, 'the writer got every change once, in commit order');
  assert.deepEqual(reader.changes, db.changes, 'and so did the other instance\'s client');
  // Status updates: the slot has confirmed everything that was stamped, so it keeps no WAL for it.
  await eventually(async () => compareLSN((await slot(admin))?.confirmed ?? '0/0', db.head) >= 0, 10_000, 'the slot confirmed the log\'s head');
});

test('an idle slot does not hold on to WAL: what other transactions write is confirmed as it streams by', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const { store } = await instance(t, url, { pollInterval: 100 });
  await eventually(() => store.isStamper, 10_000, 'the instance stamps');
  const first = await store.append([update('item', 'a', 1)]);
  const admin = await connect(t, url);
  await admin.query('CREATE TABLE unrelated (n integer)');
  await admin.query('INSERT INTO unrelated SELECT generate_series(1, 10000)');
  const wal = (await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
  assert.ok(compareLSN(wal, first.lsn) > 0, 'the WAL moved on past the last write');
  await eventually(async () => compareLSN((await slot(admin))?.confirmed ?? '0/0', wal) >= 0, 20_000, `the slot confirmed ${wal} without any write of ours`);
  const next = await store.append([update('item', 'b', 2)]);
  assert.ok(next.position > first.position, 'and writes still flow');
});

test('a dropped replication slot is created again: the writes committed while it was gone reach every client once, in the order they were made', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  // A long pause before the stamper follows the slot again: the writes below commit while it is gone.
  const { admin, writer, reader } = await twoInstances(t, url, { pollInterval: 100, retryInterval: 3000 });
  writer.send(upsert('before', 'kept', 0));
  await writer.until(() => writer.acks.has('before'), 10_000, 'a write before the slot is dropped');

  await endStream(admin);
  await eventually(async () => {
    try {
      await admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()');
    } catch {
      return false; // still in use by the connection being ended
    }
    return (await slot(admin)) === undefined;
  }, 10_000, 'the slot dropped');
  // Committed with no slot at all: an upsert and the delete sent after it, and a write made
  // straight into the database (as by an instance that died right after).
  writer.send(upsert('gone-1', 'x', 1));
  writer.send(remove('gone-2', 'x'));
  writer.send(upsert('gone-3', 'y', 3));
  const direct = randomUUID();
  await writeRecord(admin, { writeId: direct, changes: [update('item', 'z', 'direct')] });
  await eventually(async () => (await admin.query('SELECT 1 FROM sync_pending')).rows.length === 4, 5000, 'the four writes committed');
  assert.equal(await slot(admin), undefined, 'they committed while there was no slot');

  await writer.until(() => ['gone-1', 'gone-2', 'gone-3'].every((id) => writer.acks.has(id)), 30_000, 'the writes acknowledged');
  assert.equal(writer.operationErrors.size, 0, 'none was refused');
  const acks = ['before', 'gone-1', 'gone-2', 'gone-3'].map((id) => writer.acks.get(id)!);
  for (let i = 1; i < acks.length; i += 1) assert.ok(compareLSN(acks[i]!, acks[i - 1]!) > 0, `acknowledged in the order sent (${acks.join(', ')})`);
  assert.ok((await slot(admin)) !== undefined, 'the slot exists again');
  await assertConverged(url, [writer, reader], 5);
  assert.deepEqual([...reader.entities.keys()].sort(), ['item/kept', 'item/y', 'item/z'], 'x was upserted, then deleted, as sent');
  assert.equal((await admin.query('SELECT 1 FROM sync_pending')).rows.length, 0, 'nothing is left waiting');

  // The new slot streams: a write after the recovery is stamped at its commit as usual.
  writer.send(upsert('after', 'w', 4));
  await writer.until(() => writer.acks.has('after'), 10_000, 'a write after the recovery');
  await assertConverged(url, [writer, reader], 6);
});

test('an instance started while the slot is gone creates it and stamps the writes left unstamped', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const first = await PostgresSyncStore.open(url, { pollInterval: 100 });
  const stamped = await first.append([update('item', 'a', 1)]);
  await first.close();
  const admin = await connect(t, url);
  await admin.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()');
  // Written by instances that died before these were stamped.
  await writeRecord(admin, { writeId: randomUUID(), operationId: 'left-1', changes: [update('item', 'b', 2)] });
  await writeRecord(admin, { writeId: randomUUID(), operationId: 'left-2', changes: [{ type: 'patch', entityType: 'item', entityId: 'b', patch: { more: true } }] });

  const { server } = await instance(t, url, { pollInterval: 100 });
  const client = await ModelClient.open(t, server);
  await eventually(async () => (await databaseState(url)).lsns.length === 3, 20_000, 'the left writes stamped');
  const db = await databaseState(url);
  await client.reach(db.head);
  assert.equal(db.lsns.length, 3, 'the earlier record and the two left behind');
  assert.ok(compareLSN(db.lsns[1]!, stamped.lsn) > 0, 'stamped after the head');
  assert.deepEqual(client.entities, db.entities);
  assert.deepEqual(client.entities.get('item/b'), { more: true }, 'the patch was merged into the write before it');
  client.send(upsert('left-1', 'b', 2));
  await client.until(() => client.acks.has('left-1'), 10_000, 'the answer to a repeated operation');
  assert.equal(client.acks.get('left-1'), db.lsns[1], 'its operation id answers with its record');
  assert.ok((await slot(admin)) !== undefined, 'the slot exists again');
});

test('the stamper killed mid-stream and started again: writes through the other instances flow on, none lost or repeated', BOUNDED, async (t) => {
  const url = await cluster.createDatabase();
  const instances = [await startCli(t, ['--store', url]), await startCli(t, ['--store', url]), await startCli(t, ['--store', url])];
  const stamper = await (async () => {
    let pid: number | undefined;
    await eventually(async () => (pid = await stamperPid(url)) !== undefined, 10_000, 'a stamper');
    return instances.find((cli) => cli.pid === pid)!;
  })();
  assert.ok(stamper, 'one of the instances stamps');
  const others = instances.filter((cli) => cli !== stamper);
  let watcher = await ModelClient.open(t, stamper);
  const writers = await Promise.all(others.map((cli) => ModelClient.open(t, cli)));
  const frames = (w: number, from: number, count: number) =>
    Array.from({ length: count }, (_, i) => upsert(`k${w}-${from + i}`, String(((from + i) * 2 + w) % 15), { w, n: from + i }));
  const sending = writers.map((writer, w) => sendUntilAcknowledged(writer, frames(w, 0, 150), 60_000));
  await writers[0]!.until(() => writers[0]!.acks.size >= 30, 30_000, 'part of the stream');
  stamper.child.kill('SIGKILL');
  await stamper.exited;
  // Whether or not the first ones were all stamped before the kill, these need another stamper.
  sending.push(...writers.map((writer, w) => sendUntilAcknowledged(writer, frames(w, 150, 50), 60_000)));
  await Promise.all(sending.map((sender) => sender.done));
  const next = await stamperPid(url);
  assert.ok(others.some((cli) => cli.pid === next), `another instance took the stamper role over (${next})`);
  const restarted = await startCli(t, ['--store', url]);
  watcher.socket.terminate();
  watcher = await ModelClient.open(t, restarted, watcher.lsn, watcher);
  assert.deepEqual(sending.map((sender) => sender.deferred()), [0, 0, 0, 0], 'no operation was deferred');
  for (const writer of writers) assert.equal(writer.operationErrors.size, 0, 'no operation was refused');
  await assertConverged(url, [...writers, watcher], 200 * writers.length);
});

test('PostgreSQL restarted mid-stream: the stream comes back, deferred writes are sent again and applied once', BOUNDED, async (t) => {
  // Its own cluster: this test stops it.
  const own = await startPostgresCluster();
  t.after(() => own.destroy());
  const url = await own.createDatabase();
  const { writer, reader } = await twoInstances(t, url, { pollInterval: 100, retryInterval: 100, connectionTimeout: 2000 });
  const frames = (from: number, count: number) => Array.from({ length: count }, (_, i) => upsert(`r-${from + i}`, String((from + i) % 10), { n: from + i }));
  const total = 200;
  const before = sendUntilAcknowledged(writer, frames(0, 150), 60_000);
  await writer.until(() => writer.acks.size >= 40, 30_000, 'part of the stream');
  await own.stop();
  // Sent while the database is down: deferred, and sent again once it is back.
  const during = sendUntilAcknowledged(writer, frames(150, 50), 60_000);
  await eventually(() => during.deferred() > 0, 10_000, 'a write deferred while the database is down');
  await own.start();
  await Promise.all([before.done, during.done]);
  await assertConverged(url, [writer, reader], total);
  const db = await databaseState(url);
  assert.deepEqual(reader.changes, db.changes, 'the other instance\'s client got every change once, in order');
  const admin = await connect(t, url);
  await eventually(async () => {
    const state = await slot(admin);
    return state?.activePid !== null && state !== undefined && compareLSN(state.confirmed, db.head) >= 0;
  }, 20_000, 'the slot streamed again and confirmed the head');
});
