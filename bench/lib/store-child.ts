/**
 * A child process of the store benchmark: opens one kind of log in a directory, measures how long
 * that took and what the process holds afterwards, then (task `catchup`) reads every change in
 * pages of 1,000 and builds each page's `changes` frame, as a catch-up does. Prints one JSON
 * line. Run with --expose-gc so the memory figure is what stays, not garbage.
 *
 *   node --expose-gc --import tsx bench/lib/store-child.ts <log|json-lines|SQLite|LMDB|read-crc> <dir> <open|catchup>
 *
 * `read-crc` only reads the log file in 1 MiB chunks and computes its CRC-32: the floor of an
 * open that checks every byte.
 */
import { readFileSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { changesFrame } from '../../server/changes-frame.ts';
import { FileSyncStore } from '../../server/store.ts';
import { openEngineLog, type EngineName } from './engine-logs.ts';
import { JsonLinesLog } from './json-lines-log.ts';

const [kind, dir, task] = process.argv.slice(2);
const PAGE = 1000;

function memory(): { rssMiB: number; anonMiB: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMiB: kib('VmRSS') / 1024, anonMiB: kib('RssAnon') / 1024 };
}

/** Opens the log; returns a function that reads the next page after a cursor (empty at the end). */
async function open(): Promise<(after: number) => Promise<{ next: number; frame: string; changes: number }>> {
  switch (kind) {
    case 'log': {
      const { store } = await FileSyncStore.open(dir!);
      const until = store.headPosition;
      return async (after) => {
        const records = await store.changesAfter(BigInt(after), { until, maxChanges: PAGE });
        const last = records.at(-1);
        if (!last) return { next: after, frame: '', changes: 0 };
        // The frame as a catch-up sends it: the records' JSON joined, not parsed.
        return { next: Number(last.position), frame: changesFrame(records, last.lsn), changes: records.length /* one change each here */ };
      };
    }
    case 'read-crc': {
      const file = await openFile(join(dir!, 'sync.log'));
      const chunk = Buffer.allocUnsafe(1 << 20);
      let checksum = 0;
      for (let position = 0; ;) {
        const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        checksum = crc32(chunk.subarray(0, bytesRead), checksum);
        position += bytesRead;
      }
      await file.close();
      return async (after) => ({ next: after, frame: '', changes: 0 });
    }
    case 'json-lines': {
      const log = await JsonLinesLog.open(join(dir!, 'changes.log'));
      return async (after) => {
        const records = log.changesAfter(after, PAGE);
        const changes = records.flatMap((record) => record.changes);
        return { next: records.at(-1)?.position ?? after, frame: JSON.stringify({ type: 'changes', changes }), changes: changes.length };
      };
    }
    default: {
      const engine = openEngineLog(kind as EngineName, dir!);
      if (!engine) throw new Error(`${kind} cannot be loaded`);
      return async (after) => {
        const rows = engine.page(after, PAGE);
        const changes = rows.flatMap((row) => (JSON.parse(row.value.toString('utf8')) as { changes: unknown[] }).changes);
        return { next: rows.at(-1)?.key ?? after, frame: JSON.stringify({ type: 'changes', changes }), changes: changes.length };
      };
    }
  }
}

const started = performance.now();
const read = await open();
const openMs = performance.now() - started;
const opened = memory();
let changes = 0;
let catchupMs = 0;
if (task === 'catchup') {
  const from = performance.now();
  for (let after = 0; ;) {
    const page = await read(after);
    if (page.changes === 0) break;
    changes += page.changes;
    after = page.next;
  }
  catchupMs = performance.now() - from;
}
process.stdout.write(`${JSON.stringify({ openMs, ...opened, changes, catchupMs })}\n`);
process.exit(0);
