/**
 * `npm run bench`: runs every `bench/*.bench.ts` (or those named on the command line), prints
 * one markdown table, each figure beside a baseline measured in the same run, and writes
 * bench/results.json. Benchmarks are not tests: nothing here asserts a time.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import type { Row } from './lib/harness.ts';

const here = new URL('./', import.meta.url);

function format(value: number, unit: string): string {
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toLocaleString('en-US', { maximumFractionDigits: digits })} ${unit}`.trim();
}

function ratio(row: Row): string {
  if (row.baseline === null || row.baseline === 0) return 'n/a';
  const value = row.ours / row.baseline;
  // A ratio far below 1 keeps two significant digits rather than reading as 0.
  return value !== 0 && Math.abs(value) < 0.01 ? `${value.toPrecision(2)}x` : `${value.toLocaleString('en-US', { maximumFractionDigits: 2 })}x`;
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const files = (await readdir(here)).filter((name) => name.endsWith('.bench.ts')).sort()
    .filter((name) => wanted.length === 0 || wanted.some((w) => name.startsWith(w)));
  const results: Record<string, Row[]> = {};
  for (const file of files) {
    process.stderr.write(`running ${file}...\n`);
    const module = (await import(new URL(file, here).href)) as { run(): Promise<Row[]> };
    results[file] = await module.run();
  }
  const table = [['what', 'ours', 'baseline (same run)', 'ratio', 'baseline is']];
  for (const rows of Object.values(results)) {
    for (const row of rows) {
      table.push([row.what, format(row.ours, row.unit), row.baseline === null ? '' : format(row.baseline, row.unit), ratio(row), row.baselineName ?? '']);
    }
  }
  const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  console.log(`\nsync-connection benchmarks, ${new Date().toISOString().slice(0, 10)}, ${machine}\n`);
  console.log(line(table[0]!));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of table.slice(1)) console.log(line(r));
  await writeFile(new URL('results.json', here), `${JSON.stringify({ date: new Date().toISOString(), machine, results }, null, 2)}\n`);
}

await main();
