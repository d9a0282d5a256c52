/** The embedded log killed in the middle of a compaction loses nothing. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { test } from 'node:test';
import { FileSyncStore } from '../store.ts';
import { apply, readAll } from './compaction-helpers.ts';
import { tempDir } from './helpers.ts';

const BOUNDED = { timeout: 60_000 };
const CHILD = new URL('./compaction-crash-child.ts', import.meta.url).pathname;

/** Runs the child until it says "stopped", then kills it with SIGKILL; returns what it acknowledged. */
async function killedAt(dir: string, step: string, count: number): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(count), step], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
      if (parts.includes('stopped')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before the step ${step}`)));
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  return lines.filter((line) => line.startsWith('acked'));
}

for (const step of ['written', 'replaced'] as const) {
  test(`killed when the compacted file was ${step}: every acknowledged write is there after a restart, and the operation ids stay applied`, BOUNDED, async (t) => {
    const dir = await tempDir(t);
    const acked = await killedAt(dir, step, 400);
    assert.equal(acked.length, 400);
    const { store } = await FileSyncStore.open(dir);
    t.after(() => store.close());
    const expected = new Map<string, unknown>();
    for (const line of acked) {
      const n = Number(line.split(' ')[1]);
      expected.set(String(n % 20), { n });
    }
    assert.deepEqual(apply(await readAll(store)), expected);
    assert.equal(store.head, acked.at(-1)!.split(' ')[2], 'the head is the last acknowledged LSN');
    assert.equal((await store.append([{ type: 'update', entityType: 'item', entityId: '0', data: 'again' }], 'op-5')).duplicate, true);
    assert.deepEqual(await readdir(dir).then((names) => names.filter((name) => name.includes('compacting'))), [], 'no half-written file is left');
    const { changes } = await store.stats();
    if (step === 'written') assert.equal(changes, 400, 'the rename never happened: the log is the old one');
    else assert.equal(changes, 20, 'the rename happened: the log is the compacted one');
  });
}
