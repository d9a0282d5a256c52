/**
 * The embedded log against a damaged file, a second server on its directory, a version-1 log to
 * import, and a size past 2 GiB. Nothing damaged is ever served; what is cut is said.
 */
import assert from 'node:assert/strict';
import { open, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { compareLSN, formatLSN } from '../../src/protocol/lsn.ts';
import { DataDirLockedError } from '../data-dir-lock.ts';
import { encodeEntry } from '../legacy-log.ts';
import { CorruptRecordError } from '../log-reader.ts';
import { DamagedLogError } from '../log-open.ts';
import { encodeRecord } from '../record-codec.ts';
import { FileSyncStore } from '../store.ts';
import { startCli, tempDir, TestClient, update } from './helpers.ts';

const BOUNDED = { timeout: 30_000 };
const ALL = { until: 2n ** 64n - 1n, maxChanges: Number.MAX_SAFE_INTEGER };

/** A store with three records (entities a, b, c), closed; returns their LSNs. */
async function threeRecords(dir: string): Promise<string[]> {
  const { store } = await FileSyncStore.open(dir);
  const lsns: string[] = [];
  for (const id of ['a', 'b', 'c']) lsns.push((await store.append([update('doc', id, { id, text: `the text of ${id}` })], `op-${id}`)).lsn);
  await store.close();
  return lsns;
}

/** The file offset where record `n` (0-based) of `threeRecords` starts. */
async function recordStart(dir: string, n: number): Promise<number> {
  const bytes = await readFile(join(dir, 'sync.log'));
  const marker = Buffer.from(`the text of ${['a', 'b', 'c'][n]}`);
  const at = bytes.indexOf(marker);
  // The record's frame begins 4 bytes (its checksum) before its magic, which precedes the marker.
  return bytes.lastIndexOf(Buffer.from([0x53, 0x52, 0x01]), at) - 4;
}

async function overwrite(path: string, offset: number, bytes: Buffer): Promise<void> {
  const file = await open(path, 'r+');
  await file.write(bytes, 0, bytes.length, offset);
  await file.close();
}

for (const [what, damage] of [
  ['a zero-filled run', (path: string, at: number) => overwrite(path, at + 10, Buffer.alloc(40))],
  ['a flipped bit inside its data', async (path: string, at: number) => {
    const bytes = await readFile(path);
    const data = bytes.indexOf(Buffer.from('the text of b'), at);
    await overwrite(path, data + 4, Buffer.from([bytes[data + 4]! ^ 0x04]));
  }],
] as const) {
  test(`${what} in the middle refuses to open and changes nothing; --recover-log keeps what precedes it`, BOUNDED, async (t) => {
    const dir = await tempDir(t);
    const lsns = await threeRecords(dir);
    const path = join(dir, 'sync.log');
    const damagedAt = await recordStart(dir, 1);
    await damage(path, damagedAt);
    const before = await readFile(path);

    const refused = await FileSyncStore.open(dir).catch((error: unknown) => error);
    assert.ok(refused instanceof DamagedLogError, `refused: ${String(refused)}`);
    assert.match(refused.message, new RegExp(`damaged at byte ${damagedAt} \\(just after LSN ${lsns[0]!.replace('/', '\\/')}\\)`), 'names where');
    assert.match(refused.message, /intact records follow from byte \d+/, 'says good records follow');
    assert.match(refused.message, /keep the 1 records before the damage .*--recover-log/, 'names the recovery option and what it keeps');
    assert.deepEqual(await readFile(path), before, 'nothing was changed');

    const { store, report } = await FileSyncStore.open(dir, { recover: true });
    t.after(() => store.close());
    assert.equal(report.recovered?.offset, damagedAt, 'the cut is reported');
    assert.equal(store.head, lsns[0], 'the record before the damage is kept');
    assert.deepEqual((await store.changesAfter(0n, ALL)).map((r) => r.changes[0]!.entityId), ['a']);
    const saved = await readFile(report.recovered!.savedTo);
    assert.deepEqual(saved, before.subarray(damagedAt), 'the rest was set aside, byte for byte');
    assert.equal((await store.append([update('doc', 'b', 1)], 'op-b')).duplicate, false, 'a cut operation can be applied again');
    assert.equal((await store.append([update('doc', 'a', 1)], 'op-a')).duplicate, true, 'a kept one is still known');
  });
}

test('a zero-filled or truncated tail (an interrupted write) is cut and reported; a longer damaged tail needs --recover-log', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const lsns = await threeRecords(dir);
  const path = join(dir, 'sync.log');
  const size = (await stat(path)).size;
  // The file grew by zeros (a crash after the size was extended, before the data landed).
  await writeFile(path, Buffer.alloc(4096), { flag: 'a' });
  let opened = await FileSyncStore.open(dir);
  assert.equal(opened.truncatedBytes, 4096, 'the zero tail was cut');
  assert.match(String(opened.report.torn?.reason), /no record starts here/);
  assert.equal(opened.store.head, lsns[2], 'all three records kept');
  await opened.store.close();
  assert.equal((await stat(path)).size, size);

  // Truncated inside the last record.
  await truncate(path, size - 7);
  opened = await FileSyncStore.open(dir);
  assert.equal(opened.store.head, lsns[1], 'the record cut short is gone, the others kept');
  assert.ok(opened.truncatedBytes > 0);
  await opened.store.close();

  // More unreadable bytes than one interrupted write can leave: not a torn tail.
  await writeFile(path, Buffer.alloc(17 * 1024 * 1024), { flag: 'a' });
  await assert.rejects(FileSyncStore.open(dir), /the last 17825792 bytes are unreadable, more than one interrupted write leaves.*--recover-log/);
  opened = await FileSyncStore.open(dir, { recover: true });
  t.after(() => opened.store.close());
  assert.equal(opened.store.head, lsns[1]);
});

test('a record damaged after it was read at open is never served: the read fails, saying where', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  await threeRecords(dir);
  const { store } = await FileSyncStore.open(dir);
  t.after(() => store.close());
  const at = await recordStart(dir, 2);
  await overwrite(join(dir, 'sync.log'), at + 30, Buffer.from('XXXX'));
  await assert.rejects(store.changesAfter(0n, ALL), (error: unknown) => error instanceof CorruptRecordError && error.offset === at);
});

test('a second store on the same data directory refuses to open, in this process and in another', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const { store } = await FileSyncStore.open(dir);
  await assert.rejects(FileSyncStore.open(dir), (error: unknown) =>
    error instanceof DataDirLockedError && error.message.includes(`process ${process.pid}`) && /same LSNs/.test(error.message));
  await store.close();
  // Once closed, the directory is free again.
  const again = await FileSyncStore.open(dir);
  await again.store.close();

  const cli = await startCli(t, ['--data-dir', dir]);
  await assert.rejects(startCli(t, ['--data-dir', dir]), new RegExp(`in use by another sync server \\(process ${cli.pid}\\)`));
  const client = await TestClient.open(`ws://127.0.0.1:${cli.port}/api/sync`, t);
  await client.sync('0/0');
  client.send({ type: 'operation', operation: { id: 'still', type: 'upsert', payload: { entityType: 't', entityId: '1', data: 1 } } });
  assert.equal((await client.until('operation_complete')).at(-1)!.type, 'operation_complete', 'the first server still works');
  // Killed, it leaves no stale lock behind.
  cli.child.kill('SIGKILL');
  await cli.exited;
  const after = await FileSyncStore.open(dir);
  await after.store.close();
});

test('a version-1 log (JSON lines) is imported on first open: records, entities and operation ids kept, every LSN above the old ones', BOUNDED, async (t) => {
  const dir = await tempDir(t);
  const lines = [
    encodeEntry([update('task', '1', { v: 1 })], 'op-1'),
    encodeEntry([update('task', '2', { v: 2 }), { type: 'delete', entityType: 'task', entityId: '1' }]),
    encodeEntry([update('task', '3', { v: 3 })], 'op-3'),
  ];
  const legacy = Buffer.concat([...lines, Buffer.from('{"changes":[{"ty')]);
  await writeFile(join(dir, 'changes.log'), legacy);
  const { store, report } = await FileSyncStore.open(dir);
  t.after(() => store.close());
  assert.equal(report.imported?.records, 3);
  assert.equal(report.imported?.tornBytes, 16, 'the torn last line was left out');
  assert.ok((await readdir(dir)).includes('changes.log.imported'), 'the old file is kept, renamed');
  const records = await store.changesAfter(0n, ALL);
  assert.deepEqual(records.map((r) => r.changes.length), [1, 2, 1]);
  assert.ok(compareLSN(records[0]!.lsn, formatLSN(BigInt(legacy.length))) > 0, 'LSNs start above the old log\'s');
  assert.deepEqual((await store.entities({ limit: 10 })).entities.map((e) => e.entityId), ['2', '3']);
  assert.equal((await store.append([update('task', '1', 0)], 'op-3')).lsn, records[2]!.lsn, 'an imported operation id is answered again');
});

test('a log larger than 2 GiB opens, is read from and appended to', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'sync.log');
  // 2,100 records of 1 MiB each, written directly: the store checks every one on open.
  const { store: fresh } = await FileSyncStore.open(dir);
  await fresh.close();
  const record = encodeRecord([update('big', 'one', 'x'.repeat(1024 * 1024))]);
  const file = await open(path, 'a');
  for (let i = 0; i < 2100; i += 1) await file.write(record);
  await file.close();
  const size = (await stat(path)).size;
  assert.ok(size > 2 ** 31, `the file is ${size} bytes`);

  const { store } = await FileSyncStore.open(dir);
  t.after(() => store.close());
  assert.equal(store.head, formatLSN(BigInt(size)), 'its head is its size (base 0)');
  assert.equal((await store.stats()).records, 2100);
  const added = await store.append([update('small', 'after', { ok: true })]);
  assert.ok(compareLSN(added.lsn, formatLSN(2n ** 31n)) > 0, `an LSN past 2 GiB: ${added.lsn}`);
  const tail = await store.changesAfter(BigInt(size - record.length), { ...ALL, maxBytes: 4 << 20 });
  assert.deepEqual(tail.map((r) => r.changes[0]!.entityId), ['one', 'after'], 'read back across the end of the big part');
  assert.equal(await store.countChangesAfter(0n, store.headPosition), 2101);
  const ids: string[] = [];
  let after: string | undefined;
  do {
    const page = await store.entities({ limit: 10, ...(after === undefined ? {} : { after }) });
    ids.push(...page.entities.map((entity) => entity.entityId));
    after = page.next;
  } while (after !== undefined);
  assert.deepEqual(ids, ['one', 'after'], 'the entities, in pages of about a MiB, read from the records that hold them');
});
