/**
 * Bytes a page downloads: the element bundle and the worker chunk as built in dist/ (each with
 * the shared chunks it imports statically, gzip -9 per file, as served), beside the libraries in
 * them (lit, @lit/context) bundled whole with esbuild, minified, gzip -9; then what each part of
 * all a page loads costs, its code cut out of the built files by source map. The element
 * bundle holds the element API only; the compatibility layer for the older `SyncClient` API is
 * `sync-connection/compat`, measured apart in the library build (dist/lib) as what it adds.
 *
 * The files are found by following imports from dist/sync-connection.js, never by listing dist/:
 * rollup does not clean dist/, so older worker chunks may lie there.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import type { Row } from './lib/harness.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const ENTRY = join(dist, 'sync-connection.js');
const LIB = join(dist, 'lib');

/** `new URL("x.js", import.meta.url)`: a worker (or other asset) the code loads at run time. */
const RUNTIME_URL = /new URL\(\s*["']([^"']+\.js)["']\s*,\s*import\.meta\.url\s*\)/g;

const gzipBytes = (text: string | Uint8Array) => gzipSync(text, { level: 9 }).length;

/** Every file `entry` imports statically (itself included), by esbuild's own resolution. */
async function staticGraph(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    metafile: true,
    format: 'esm',
    platform: 'browser',
    logLevel: 'silent',
  });
  return Object.keys(result.metafile.inputs).map((path) => join(root, path)).sort();
}

/** The npm packages a built file contains, from its source map; the lit family counts as `lit`. */
async function librariesIn(file: string): Promise<Set<string>> {
  const map = JSON.parse(await readFile(`${file}.map`, 'utf8')) as { sources: string[] };
  const found = new Set<string>();
  for (const source of map.sources) {
    const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(source);
    if (!match) continue;
    const name = match[1]!;
    found.add(['lit-html', 'lit-element', '@lit/reactive-element'].includes(name) ? 'lit' : name);
  }
  return found;
}

/**
 * The minified code of `file`, cut into the pieces its source map attributes to each source
 * (path relative to the repository, or `node_modules/<package>/...`).
 */
async function codeBySource(file: string): Promise<Map<string, string>> {
  const code = await readFile(file, 'utf8');
  const map = JSON.parse(await readFile(`${file}.map`, 'utf8')) as { sources: string[]; mappings: string };
  const names = map.sources.map((source) => relative(root, join(dirname(file), source)));
  const lines = code.split('\n');
  const pieces = new Map<string, string>();
  let source = 0;
  map.mappings.split(';').forEach((segmentsOfLine, lineIndex) => {
    const line = lines[lineIndex] ?? '';
    const segments = segmentsOfLine === '' ? [] : segmentsOfLine.split(',').map(decodeVlq);
    let column = 0;
    const starts: { column: number; source: number | undefined }[] = [];
    for (const fields of segments) {
      column += fields[0]!;
      if (fields.length >= 4) source += fields[1]!;
      starts.push({ column, source: fields.length >= 4 ? source : undefined });
      // fields 2 and 3 (original line and column) are not needed; their deltas only matter to them
    }
    starts.forEach((start, i) => {
      if (start.source === undefined) return;
      const name = names[start.source]!;
      pieces.set(name, (pieces.get(name) ?? '') + line.slice(start.column, starts[i + 1]?.column ?? line.length));
    });
  });
  return pieces;
}

/**
 * The parts a page pays for, by source path; the first that matches a source takes it. Shared
 * code (protocol, db) is one part wherever it lands; a source bundled into both the page and the
 * worker counts twice, as a page loads it twice.
 */
const PARTS: readonly { name: string; sources: RegExp; library?: true }[] = [
  { name: 'lit (lit-html, lit-element, @lit/reactive-element)', sources: /node_modules\/(lit|lit-html|lit-element|@lit\/reactive-element)\//, library: true },
  { name: '@lit/context', sources: /node_modules\/@lit\/context\//, library: true },
  { name: 'idb', sources: /node_modules\/idb\//, library: true },
  { name: 'other libraries', sources: /node_modules\//, library: true },
  { name: 'our elements: <sync-connection>, <sync-status>, events (src/elements, src/index.ts)', sources: /^src\/(elements\/|index\.ts|element\.ts)/ },
  { name: 'live queries: observe (live-queries, live-query, observations)', sources: /^src\/client\/(live-quer|observations)/ },
  { name: 'local-first reads: pending layer, local view, recent changes, page store', sources: /^src\/client\/(pending-layer|local-view|recent-changes|page-store)/ },
  { name: 'writes: operation check, outbox writer, pending operations', sources: /^src\/client\/(writes|outbox-writer|operation-input|pending-operations)/ },
  { name: 'tabs: leader election, follower/leader coordination, their messages', sources: /^src\/(client\/(tab-|leader-election|shared-connection)|protocol\/tab-messages)/ },
  { name: 'our client: service, worker manager, state, events, options (rest of src/client)', sources: /^src\/client\// },
  { name: 'protocol: wire and worker messages, parsers, LSN, errors (src/protocol)', sources: /^src\/protocol\// },
  { name: 'local store: schema, records, outbox groups (src/db)', sources: /^src\/db\// },
  { name: 'the worker: connection, change store, outbox, folding (src/worker)', sources: /^src\/worker\// },
  { name: 'other sources', sources: /./ },
];

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function decodeVlq(segment: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (const char of segment) {
    const digit = BASE64.indexOf(char);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}

/** The packages bundled whole (everything they export), minified, as one ES module. */
async function librariesBundled(packages: readonly string[]): Promise<number> {
  const result = await build({
    stdin: { contents: packages.map((name) => `export * from '${name}';`).join('\n'), resolveDir: root, loader: 'js' },
    bundle: true,
    write: false,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
  });
  return gzipBytes(result.outputFiles[0]!.contents);
}

interface Part { files: string[]; gzip: number; libraries: string[] }

async function part(files: readonly string[]): Promise<Part> {
  let gzip = 0;
  const libraries = new Set<string>();
  for (const file of files) {
    gzip += gzipBytes(await readFile(file));
    for (const name of await librariesIn(file)) libraries.add(name);
  }
  return { files: files.map((file) => relative(root, file)), gzip, libraries: [...libraries].sort() };
}

export async function run(): Promise<Row[]> {
  const elementFiles = await staticGraph(ENTRY);
  const workerEntries = new Set<string>();
  for (const file of elementFiles) {
    for (const match of (await readFile(file, 'utf8')).matchAll(RUNTIME_URL)) {
      workerEntries.add(join(dirname(file), match[1]!));
    }
  }
  if (workerEntries.size !== 1) throw new Error(`expected one worker chunk, found ${[...workerEntries].join(', ') || 'none'}`);
  const workerFiles = await staticGraph([...workerEntries][0]!);
  const allFiles = [...new Set([...elementFiles, ...workerFiles])].sort();

  const element = await part(elementFiles);
  const worker = await part(workerFiles);
  const all = await part(allFiles);
  const byPart = new Map<string, string>(PARTS.map(({ name }) => [name, '']));
  for (const file of allFiles) {
    for (const [source, code] of await codeBySource(file)) {
      const { name } = PARTS.find(({ sources }) => sources.test(source))!;
      byPart.set(name, byPart.get(name)! + code);
    }
  }
  let ours = 0;
  let libraries = 0;
  for (const { name, library } of PARTS) {
    const code = byPart.get(name)!;
    if (name === 'other sources' && code !== '') throw new Error('a source outside src/ and node_modules');
    if (library) libraries += code.length;
    else ours += code.length;
  }
  process.stderr.write(
    `bundle: element = ${element.files.join(' + ')} (${element.libraries.join(', ')}); ` +
      `worker = ${worker.files.join(' + ')} (${worker.libraries.join(', ')}); ` +
      `minified bytes by source map: ours ${ours}, libraries ${libraries}\n`,
  );

  const row = (what: string, p: Part): Row => ({
    what: `${what}, gzip -9`,
    ours: p.gzip,
    baseline: null,
    unit: 'B',
    better: 'lower',
    baselineName: `${p.libraries.join(' + ')} alone, every export bundled by esbuild, minified, gzip -9`,
  });
  const rows = [
    row('element: dist/sync-connection.js + its static imports', element),
    row('worker chunk + its static imports', worker),
    row('all a page loads (element + worker, shared chunk once)', all),
  ];
  for (const [r, p] of [[rows[0]!, element], [rows[1]!, worker], [rows[2]!, all]] as const) {
    if (p.libraries.length > 0) r.baseline = await librariesBundled(p.libraries);
    else r.baselineName = 'no library inside';
  }
  // The library build, as an app's bundler gets it: our modules only, the dependencies left out.
  const libGraph = async (entry: string) => (await staticGraph(join(LIB, entry))).filter((file) => file.startsWith(LIB));
  const elementLib = await part(await libGraph('index.js'));
  const compatLib = await libGraph('compat.js');
  const compatOnly = await part(compatLib.filter((file) => !elementLib.files.includes(relative(root, file))));
  process.stderr.write(`bundle: sync-connection/compat adds ${compatOnly.files.join(' + ')}\n`);
  rows.push({
    what: 'sync-connection/compat on top of the element: the dist/lib files only it imports, gzip -9',
    ours: compatOnly.gzip,
    baseline: elementLib.gzip,
    unit: 'B',
    better: 'lower',
    baselineName: 'the element entry dist/lib/index.js + its chunks (library build, dependencies left out), gzip -9',
  });
  rows.push({
    what: 'all a page loads: minified bytes of our src/ (by source map)',
    ours,
    baseline: libraries,
    unit: 'B',
    better: 'lower',
    baselineName: 'minified bytes of library code in the same files (by source map)',
  });
  for (const [name, code] of byPart) {
    if (code === '') continue;
    rows.push({
      what: `part of all a page loads: ${name}, gzip -9 of its code alone`,
      ours: gzipBytes(code),
      baseline: null,
      unit: 'B',
      better: 'lower',
      baselineName: `minified ${code.length.toLocaleString('en-US')} B (by source map)`,
    });
  }
  return rows;
}
