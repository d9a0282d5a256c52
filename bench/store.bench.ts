/**
 * The embedded store: catch-up throughput, open time and memory of the checksummed log, beside
 * the JSON-lines log of earlier releases (read whole into memory on open), same data, same run;
 * SQLite and LMDB too when they can be loaded (see lib/engine-logs.ts). Each figure comes from a
 * fresh child process. Nothing here asserts a time.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeEntry } from '../server/legacy-log.ts';
import { encodeFileHeader } from '../server/log-format.ts';
import { encodeRecord } from '../server/record-codec.ts';
import type { Change } from '../src/protocol/change.ts';
import { openEngineLog, type EngineName } from './lib/engine-logs.ts';
import type { Row } from './lib/harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const CATCHUP_RECORDS = Number(process.env.BENCH_CATCHUP_RECORDS ?? 200_000);
const BIG_LOG_MIB = Number(process.env.BENCH_LOG_MIB ?? 1024);

interface Measured { openMs: number; rssMiB: number; anonMiB: number; changes: number; catchupMs: number }

/** Record `i`: one change of about 300 bytes, as an operation makes. */
function change(i: number): { changes: Change[]; operationId: string } {
  const data = { title: `task ${i}`, done: i % 3 === 0, n: i, text: 'lorem ipsum dolor sit amet '.repeat(6) };
  return { changes: [{ type: 'update', entityType: 'task', entityId: `t-${i % 50_000}`, data, timestamp: 1_700_000_000_000 + i }], operationId: `op-${i}` };
}

/** Writes records until `count` records or `bytes` bytes, in both file formats; returns the count. */
async function writeLogs(v2Dir: string, v1Dir: string, count: number, bytes: number): Promise<number> {
  await mkdir(v2Dir, { recursive: true });
  await mkdir(v1Dir, { recursive: true });
  const v2 = createWriteStream(join(v2Dir, 'sync.log'));
  const v1 = createWriteStream(join(v1Dir, 'changes.log'));
  v2.write(encodeFileHeader(0n));
  let written = 0;
  let size = 0;
  for (; written < count && size < bytes; written += 1) {
    const { changes, operationId } = change(written);
    const frame = encodeRecord(changes, operationId);
    size += frame.length;
    if (!v2.write(frame)) await once(v2, 'drain');
    if (!v1.write(encodeEntry(changes, operationId))) await once(v1, 'drain');
  }
  v2.end();
  v1.end();
  await Promise.all([once(v2, 'close'), once(v1, 'close')]);
  return written;
}

async function writeEngine(name: EngineName, dir: string, count: number): Promise<boolean> {
  await mkdir(dir, { recursive: true });
  const engine = openEngineLog(name, dir);
  if (!engine) return false;
  for (let start = 0; start < count; start += 10_000) {
    const batch = Array.from({ length: Math.min(10_000, count - start) }, (_, i) => encodeEntry(change(start + i).changes, change(start + i).operationId));
    await engine.write(batch);
  }
  await engine.close();
  return true;
}

function child(kind: string, dir: string, task: 'open' | 'catchup'): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const process_ = spawn(process.execPath, ['--expose-gc', '--max-old-space-size=16384', '--import', 'tsx', 'bench/lib/store-child.ts', kind, dir, task], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    process_.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    process_.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(output) as Measured);
      else reject(new Error(`store-child ${kind} ${task} exited with ${code}`));
    });
  });
}

export async function run(): Promise<Row[]> {
  const work = await mkdtemp(join(tmpdir(), 'sync-bench-store-'));
  try {
    const rows: Row[] = [];
    const baselineName = 'JSON-lines log of earlier releases, read whole into memory on open';
    // Catch-up: every change from 0/0 in pages of 1,000, each page made into its frame.
    await writeLogs(join(work, 'c2'), join(work, 'c1'), CATCHUP_RECORDS, Number.POSITIVE_INFINITY);
    const ours = await child('log', join(work, 'c2'), 'catchup');
    const old = await child('json-lines', join(work, 'c1'), 'catchup');
    const n = CATCHUP_RECORDS.toLocaleString('en-US');
    const perSecond = (m: Measured) => m.changes / (m.catchupMs / 1000);
    process.stderr.write(`store: catch-up of ${n} changes: log ${ours.catchupMs.toFixed(0)} ms, JSON lines ${old.catchupMs.toFixed(0)} ms\n`);
    rows.push({ what: `catch-up from 0/0, ${n} changes in pages of 1,000: changes/s`, ours: perSecond(ours), baseline: perSecond(old), unit: '/s', better: 'higher', baselineName });
    rows.push({ what: `open, then catch-up of ${n} changes: total ms`, ours: ours.openMs + ours.catchupMs, baseline: old.openMs + old.catchupMs, unit: 'ms', better: 'lower', baselineName });
    for (const engine of ['SQLite', 'LMDB'] as const) {
      if (!(await writeEngine(engine, join(work, engine), CATCHUP_RECORDS))) {
        process.stderr.write(`store: ${engine} cannot be loaded here, left out (see bench/lib/engine-logs.ts)\n`);
        continue;
      }
      const measured = await child(engine, join(work, engine), 'catchup');
      rows.push({ what: `catch-up from 0/0, ${n} changes: changes/s, ${engine} (rows: LSN, JSON)`, ours: perSecond(measured), baseline: perSecond(old), unit: '/s', better: 'higher', baselineName });
    }

    // A big log: open time and what the process holds once it is open.
    const records = await writeLogs(join(work, 'b2'), join(work, 'b1'), Number.POSITIVE_INFINITY, BIG_LOG_MIB * 2 ** 20);
    const logMiB = (await stat(join(work, 'b2', 'sync.log'))).size / 2 ** 20;
    const oldMiB = (await stat(join(work, 'b1', 'changes.log'))).size / 2 ** 20;
    await writeLogs(join(work, 'e2'), join(work, 'e1'), 0, 0);
    const [bigOurs, emptyOurs] = [await child('log', join(work, 'b2'), 'open'), await child('log', join(work, 'e2'), 'open')];
    const [bigOld, emptyOld] = [await child('json-lines', join(work, 'b1'), 'open'), await child('json-lines', join(work, 'e1'), 'open')];
    const size = `${Math.round(logMiB).toLocaleString('en-US')} MiB log (${records.toLocaleString('en-US')} records)`;
    process.stderr.write(`store: open of a ${size}: log ${bigOurs.openMs.toFixed(0)} ms, RSS ${bigOurs.rssMiB.toFixed(0)} MiB; JSON lines (${oldMiB.toFixed(0)} MiB) ${bigOld.openMs.toFixed(0)} ms, RSS ${bigOld.rssMiB.toFixed(0)} MiB\n`);
    rows.push({ what: `open a ${size}`, ours: bigOurs.openMs, baseline: bigOld.openMs, unit: 'ms', better: 'lower', baselineName });
    rows.push({ what: `open a ${size}: MiB/s`, ours: logMiB / (bigOurs.openMs / 1000), baseline: oldMiB / (bigOld.openMs / 1000), unit: 'MiB/s', better: 'higher', baselineName });
    const floor = await child('read-crc', join(work, 'b2'), 'open');
    rows.push({ what: `open a ${size}, against reading it and checking its CRC-32 in 1 MiB chunks (the floor of any open that checks every byte)`, ours: bigOurs.openMs, baseline: floor.openMs, unit: 'ms', better: 'lower', baselineName: 'read + CRC-32 of the same file, nothing else' });
    rows.push({ what: `process RSS per MiB of log, once open (${size})`, ours: (bigOurs.rssMiB - emptyOurs.rssMiB) / logMiB, baseline: (bigOld.rssMiB - emptyOld.rssMiB) / oldMiB, unit: 'MiB', better: 'lower', baselineName });
    rows.push({ what: `process heap and anonymous memory per MiB of log, once open (${size})`, ours: (bigOurs.anonMiB - emptyOurs.anonMiB) / logMiB, baseline: (bigOld.anonMiB - emptyOld.anonMiB) / oldMiB, unit: 'MiB', better: 'lower', baselineName });
    return rows;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
