// The package as a user gets it: `npm pack`, installed into a throwaway app without the
// registry (the tarball extracted into node_modules/sync-connection, the dependencies linked from
// this repo's node_modules), then resolved by Node, typechecked by tsc as the app's code, and
// read. Needs a build (dist/); `npm test` runs it after the browser tests, which build.
// Run alone: `npm run build && npm run test:package`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
const tsc = join(root, 'node_modules/typescript/bin/tsc');

/** What the app links from this repo instead of downloading it. */
const LINKED = ['lit', '@lit/context', 'typescript', 'react', '@types/react', 'vue', '@angular/core'];
/** What the library build must leave to the app's bundler. */
const EXTERNAL = ['lit', '@lit/context'];
/** The optional peers, each imported by its own entry and nothing else. */
const FRAMEWORKS = { react: 'dist/lib/react.js', vue: 'dist/lib/vue.js', '@angular/core': 'dist/lib/angular.js' };
/** The package a bare import specifier names: `@angular/core/x` -> `@angular/core`. */
const packageOf = (specifier) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

/** Definitions that exist only in the frameworks' own code. */
const FRAMEWORK_CODE = [/react\.transitional\.element/, /__v_isRef/, /ɵɵdefineComponent/];
/** What each helper calls of its framework, by the entry it is in. */
const HELPER_USES = {
  'dist/lib/react.js': /\buseSyncExternalStore\b/,
  'dist/lib/vue.js': /\bshallowReadonly\b/,
  'dist/lib/angular.js': /\bassertInInjectionContext\b/,
};

let temp; // the throwaway directory
let app; // the app that installs the package
let installed; // <app>/node_modules/sync-connection
let tarballFiles; // paths inside the tarball, e.g. 'dist/lib/index.js'

/** Installs the extracted package plus the linked dependencies into `dir`'s node_modules. */
async function install(dir, packageDir) {
  await mkdir(join(dir, 'node_modules'), { recursive: true });
  await cp(packageDir, join(dir, 'node_modules/sync-connection'), { recursive: true });
  for (const name of LINKED) {
    await mkdir(dirname(join(dir, 'node_modules', name)), { recursive: true });
    await symlink(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir');
  }
}

async function filesUnder(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)).split('\\').join('/'));
}

/** The specifiers a module imports statically; minified code too (`import{a as b}from"./chunk.js"`). */
function importsOf(code) {
  return [...code.matchAll(/(?:^|[;\s}])(?:import|export)\s*(?:[^'"]*?from\s*)?['"]([^'"]+)['"]/g)].map((match) => match[1]);
}

/** The files a module of the installed package imports statically, itself included. */
async function graph(path, seen = new Set()) {
  if (seen.has(path)) return seen;
  seen.add(path);
  const code = await readFile(join(installed, path), 'utf8');
  for (const specifier of importsOf(code).filter((s) => s.startsWith('.'))) {
    await graph(relative(installed, join(installed, dirname(path), specifier)).split('\\').join('/'), seen);
  }
  return seen;
}

/** The text of these files of the installed package, joined. */
async function text(paths) {
  return (await Promise.all([...paths].map((path) => readFile(join(installed, path), 'utf8')))).join('\n');
}

/** Runs tsc in `dir`; resolves with { code, output } instead of throwing on type errors. */
async function typecheck(dir, project) {
  try {
    const { stdout } = await run(process.execPath, [tsc, '-p', project, '--pretty', 'false'], { cwd: dir });
    return { code: 0, output: stdout };
  } catch (error) {
    if (typeof error.code !== 'number') throw error;
    return { code: error.code, output: `${error.stdout}${error.stderr}` };
  }
}

// ---- the app's code -------------------------------------------------------------------------

const MAIN_TS = `
import 'sync-connection';
import { SyncConnectionElement, SyncCompletedEvent, SyncErrorEvent } from 'sync-connection/element';
import { WorkerSyncService } from 'sync-connection/service';
import { syncClient, SyncClientCompat, migrateSyncState } from 'sync-connection/compat';
// @ts-expect-error the older SyncClient API is sync-connection/compat's alone, not the main entry's
import { syncClient as notInTheMainEntry } from 'sync-connection';
void notInTheMainEntry;

// HTMLElementTagNameMap: querySelector and createElement know the elements.
const sync = document.querySelector('sync-connection');
if (sync) {
  const element: SyncConnectionElement = sync;
  element.url = '/api/sync';
  element.token = 'secret';
  element.manual = true;
  // @ts-expect-error manual is a boolean
  element.manual = 'yes';
  // @ts-expect-error url is a string
  element.url = 42;

  // The element's own addEventListener: the event's class and its detail.
  sync.addEventListener('sync_completed', (e) => {
    const event: SyncCompletedEvent = e;
    const lsn: string = e.detail.lsn;
    void event, lsn;
  });
  // @ts-expect-error sync_completed's detail has no "count"
  sync.addEventListener('sync_completed', (e) => e.detail.count);
  // @ts-expect-error the LSN is a string, not a number
  sync.addEventListener('sync_completed', (e) => { const n: number = e.detail.lsn; void n; });
  sync.addEventListener('sync_progress', (e) => e.detail.applied + (e.detail.total ?? 0));
  sync.addEventListener('changes', (e) => e.detail.changes.map((change) => change.entityId));
  sync.addEventListener('operation_complete', (e) => e.detail.id);
  sync.addEventListener('state_change', (e) => e.detail.state.pendingOperations);
  sync.addEventListener('disconnected', (e) => e.detail.willReconnect);
  // error and message: typed by the element's own addEventListener, not for every element.
  sync.addEventListener('error', (e) => {
    const event: SyncErrorEvent = e;
    const code: 'invalid_url' | 'protocol' | 'invalid_change' | 'storage' | 'worker' | 'server' | 'closed' | 'operation' | 'observer' = e.detail.code;
    void event, code;
  });
  sync.addEventListener('message', (e) => Object.keys(e.detail.message));
  sync.removeEventListener('sync_completed', (e) => e.detail.lsn);
  sync.addEventListener('click', (e) => e.clientX);
  sync.addEventListener('custom-event', (e) => e.type);
  // @ts-expect-error an image's error event stays the DOM's ErrorEvent
  document.createElement('img').addEventListener('error', (e) => e.detail);
  // The app's other elements do not get the element's event types (no global HTMLElementEventMap entries).
  // @ts-expect-error <body> hears a bubbling "changes" as a plain Event
  document.body.addEventListener('changes', (e) => e.detail.changes);
  // @ts-expect-error the same for any other element
  document.createElement('div').addEventListener('sync_completed', (e) => e.detail.lsn);

  // The methods.
  void sync.connect();
  void sync.disconnect(false);
  void sync.forceConnect();
  sync.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: '1', data: {} } }).then((result) => {
    const id: string = result.id;
    void id;
  });
  // @ts-expect-error an operation needs a type
  void sync.queueOperation({ payload: {} });
  sync.clearOperationQueue().then((count: number) => count);
  void sync.sendSyncMessage();
  const status: 'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'error' = sync.getState().status;
  const off: () => void = sync.onStateChange((state) => state.lastLSN);
  const online: boolean = sync.getNetworkStatus().online;
  sync.getEntity('note', '1').then((entity) => entity?.data);
  sync.getEntities('note').then((entities) => entities.map((entity) => entity.entityId));
  // Local-first: writes with effects, live queries, the rollback's entities and the reset.
  void sync.queueOperation({ type: 'note.move', payload: {}, effects: [{ type: 'patch', entityType: 'note', entityId: '1', data: { list: 'l' } }] });
  // @ts-expect-error an effect is an upsert, a patch or a delete
  void sync.queueOperation({ type: 'note.move', effects: [{ type: 'rename', entityType: 'note', entityId: '1' }] });
  const stop: () => void = sync.observe('note', (rows, { added, updated, removed }) => {
    const pending: true | undefined = rows[0]?.pending;
    void pending, added.length, updated.length, removed.length;
  }, { filter: (entity) => entity.entityId !== '', sort: (a, b) => a.entityId.localeCompare(b.entityId), limit: 10 });
  // @ts-expect-error rows are read-only
  sync.observe('note', (rows) => rows.push(rows[0]!));
  // @ts-expect-error limit is a number
  sync.observe('note', () => undefined, { limit: '10' });
  sync.addEventListener('operation_error', (e) => e.detail.entities.map((entity) => entity.entityType + entity.entityId));
  sync.addEventListener('sync_reset', (e) => e.detail.reason?.length);
  void stop;
  // @ts-expect-error getEntity takes a type and an id
  void sync.getEntity('note');
  // @ts-expect-error observe takes a listener
  sync.observe('note');
  void status, off, online;
}
const created: SyncConnectionElement = document.createElement('sync-connection');
const pending: number | undefined = document.querySelector('sync-status')?.state.pendingOperations;
SyncConnectionElement.define('my-sync');
void created, pending;

// The client without an element, and the compatibility layer.
const service = new WorkerSyncService({ url: '/api/sync', dbName: 'app' });
service.on('sync_completed', (detail) => detail.lsn);
// @ts-expect-error not an event of the client
service.on('sync_finished', () => undefined);
void syncClient.connect();
const compat = new SyncClientCompat(service);
void compat.queueOperation({ type: 'upsert', payload: {} });
migrateSyncState(null, { dbName: 'app' }).then((state) => state.migrated);
`;

const APP_TSX = `
import type {} from 'sync-connection/react';
import { useRef } from 'react';
import type { SyncConnectionElement } from 'sync-connection/element';

export function App() {
  const ref = useRef<SyncConnectionElement>(null);
  return (
    <sync-connection
      ref={ref}
      url="/api/sync"
      client-id="me"
      db-name="notes"
      manual
      token="secret"
      heartbeat-interval={5000}
      className="sync"
      onsync_completed={(event) => console.log(event.detail.lsn)}
      onchanges={(event) => event.detail.changes.length}
      onerror={(event) => console.log(event.detail.code)}
      onstate_changeCapture={(event) => event.detail.state.status}
    >
      <sync-status className="status" />
    </sync-connection>
  );
}

export function Wrong() {
  return (
    <>
      {/* @ts-expect-error url is a string */}
      <sync-connection url={42} />
      {/* @ts-expect-error sync_completed's detail has no "count" */}
      <sync-connection onsync_completed={(event) => event.detail.count} />
      {/* @ts-expect-error React 19 passes the event name as written: onSync_completed is not an event prop */}
      <sync-connection onSync_completed={() => undefined} />
      {/* @ts-expect-error no such attribute */}
      <sync-connection urll="/api/sync" />
      {/* @ts-expect-error manual is a boolean */}
      <sync-connection manual="yes" />
    </>
  );
}
`;

const REACT_HOOK_TSX = `
import { useRef } from 'react';
import { useEntities } from 'sync-connection/react';
import type { SyncConnectionElement, SyncEntity } from 'sync-connection/element';
import type { WorkerSyncService } from 'sync-connection/service';

const byId = (a: SyncEntity, b: SyncEntity) => a.entityId.localeCompare(b.entityId);

export function Notes({ service }: { service: WorkerSyncService }) {
  const ref = useRef<SyncConnectionElement>(null);
  const rows: readonly SyncEntity[] = useEntities(ref, 'note', { sort: byId, limit: 10 });
  const fromService = useEntities(service, 'note');
  const none = useEntities(null, 'note');
  // @ts-expect-error the rows are read-only
  rows.push(fromService[0]!);
  // @ts-expect-error the entity type is a string
  useEntities(ref, 42);
  // @ts-expect-error no such option
  useEntities(ref, 'note', { order: 'asc' });
  // @ts-expect-error a ref to something that cannot be observed
  useEntities(useRef<HTMLDivElement>(null), 'note');
  const pending: true | undefined = rows[0]?.pending;
  return <sync-connection ref={ref}>{none.length}{String(pending)}</sync-connection>;
}
`;

const VUE_TS = `
import { shallowRef, useTemplateRef, type Ref } from 'vue';
import { useEntities } from 'sync-connection/vue';
import type { SyncConnectionElement, SyncEntity } from 'sync-connection/element';

export function setup(type: Ref<string>) {
  const sync = useTemplateRef<SyncConnectionElement>('sync');
  const rows = useEntities(sync, type, { limit: 5 });
  const list: readonly SyncEntity[] = rows.value;
  const pendingOnly = useEntities(() => sync.value, 'note', () => ({ filter: (entity: SyncEntity) => entity.pending === true }));
  // @ts-expect-error the ref is read-only
  rows.value = [];
  // @ts-expect-error not something that can be observed
  useEntities(shallowRef(document.body), 'note');
  return { list, pendingOnly };
}
`;

const ANGULAR_TS = `
import { ElementRef, Injector, viewChild, type Signal } from '@angular/core';
import { injectEntities } from 'sync-connection/angular';
import type { SyncConnectionElement, SyncEntity } from 'sync-connection/element';

export class NotesView {
  readonly sync = viewChild<ElementRef<SyncConnectionElement>>('sync');
  readonly notes: Signal<readonly SyncEntity[]> = injectEntities(this.sync, 'note', { limit: 3 });

  clear(): void {
    // @ts-expect-error the signal is read-only
    this.notes.set([]);
  }
}

export function outside(injector: Injector, element: SyncConnectionElement): Signal<readonly SyncEntity[]> {
  // @ts-expect-error the injector is an Injector
  injectEntities(element, 'note', { injector: {} });
  return injectEntities(element, () => 'note', { injector });
}
`;

const NO_JSX_TYPING_TSX = `
export const app = <sync-connection url="/api/sync" onsync_completed={(event) => event.detail.lsn} />;
`;

function tsconfig(moduleResolution, files, { skipLibCheck = false } = {}) {
  return JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2022', 'DOM', 'DOM.Iterable'],
      module: moduleResolution === 'bundler' ? 'ESNext' : 'NodeNext',
      moduleResolution,
      jsx: 'react-jsx',
      strict: true,
      noEmit: true,
      // false: the package's declarations are checked too, and how they merge with lib.dom.d.ts.
      skipLibCheck,
      types: [],
    },
    files,
  });
}

async function writeApp(dir) {
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await writeFile(join(dir, 'src/main.ts'), MAIN_TS);
  await writeFile(join(dir, 'src/app.tsx'), APP_TSX);
  await writeFile(join(dir, 'src/notes.tsx'), REACT_HOOK_TSX);
  await writeFile(join(dir, 'src/vue-notes.ts'), VUE_TS);
  await writeFile(join(dir, 'src/angular-notes.ts'), ANGULAR_TS);
  const files = ['src/main.ts', 'src/app.tsx', 'src/notes.tsx', 'src/vue-notes.ts', 'src/angular-notes.ts'];
  await writeFile(join(dir, 'tsconfig.bundler.json'), tsconfig('bundler', files));
  await writeFile(join(dir, 'tsconfig.nodenext.json'), tsconfig('nodenext', files, { skipLibCheck: true }));
}

// ---- setup ----------------------------------------------------------------------------------

before(async () => {
  if (!existsSync(join(root, 'dist/custom-elements.json'))) {
    await run('npm', ['run', 'build'], { cwd: root });
  }
  temp = await mkdtemp(join(tmpdir(), 'sync-connection-package-'));
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', temp], { cwd: root });
  const [packed] = JSON.parse(stdout);
  tarballFiles = packed.files.map((file) => file.path);
  const extracted = join(temp, 'extracted');
  await mkdir(extracted);
  await run('tar', ['-xzf', join(temp, packed.filename), '-C', extracted, '--strip-components=1']);
  app = join(temp, 'app');
  await writeApp(app);
  await install(app, extracted);
  installed = join(app, 'node_modules/sync-connection');
});

after(async () => {
  if (temp) await rm(temp, { recursive: true, force: true });
});

// ---- the tests ------------------------------------------------------------------------------

describe('the packed package', () => {
  it('holds what npm installs and nothing else: no tests, data, node_modules or benchmarks', async () => {
    assert.deepEqual((await filesUnder(installed)).sort(), [...tarballFiles].sort());
    const unwanted = tarballFiles.filter((path) =>
      /(^|\/)(node_modules|data|\.data|test|tests|bench|examples|coverage)\//.test(path) ||
      /\.test\.[cm]?[jt]s$/.test(path) ||
      /(^|\/)\./.test(path),
    );
    assert.deepEqual(unwanted, []);
    for (const path of ['package.json', 'README.md', 'dist/custom-elements.json', 'dist/lib/index.js', 'dist/types/index.d.ts']) {
      assert.ok(tarballFiles.includes(path), `${path} is in the tarball`);
    }
  });

  it('resolves every exports subpath, with Node and with the types condition, to a file in the tarball', async () => {
    const subpaths = Object.keys(pkg.exports);
    const script = `
      const out = {};
      for (const subpath of ${JSON.stringify(subpaths)}) {
        const specifier = 'sync-connection' + subpath.slice(1);
        try { out[subpath] = import.meta.resolve(specifier); } catch (error) { out[subpath] = { error: error.code }; }
      }
      console.log(JSON.stringify(out));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    const resolved = JSON.parse(stdout);
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      assert.equal(typeof resolved[subpath], 'string', `${subpath} resolves: ${JSON.stringify(resolved[subpath])}`);
      const file = relative(installed, fileURLToPath(resolved[subpath])).split('\\').join('/');
      assert.ok(tarballFiles.includes(file), `${subpath} -> ${file} is in the tarball`);
      if (typeof target === 'object' && target.types) {
        assert.ok(tarballFiles.includes(target.types.replace(/^\.\//, '')), `${subpath} types ${target.types} are in the tarball`);
      }
    }
    for (const field of ['main', 'module', 'types', 'customElements']) {
      assert.ok(tarballFiles.includes(pkg[field].replace(/^\.\//, '')), `${field}: ${pkg[field]} is in the tarball`);
    }
  });

  it("leaves lit, @lit/context and the frameworks to the app: its modules import them and copy none of their code", async () => {
    for (const name of EXTERNAL) {
      assert.ok(pkg.dependencies?.[name], `${name} is a dependency`);
      assert.equal(pkg.devDependencies?.[name], undefined, `${name} is not only a dev dependency`);
    }
    assert.equal(pkg.bundleDependencies ?? pkg.bundledDependencies, undefined);
    // Definitions that exist only in those packages' code.
    const COPIED = [
      /class\s+LitElement\b/, /class\s+ReactiveElement\b/, /litHtmlVersions/, /reactiveElementVersions/,
      /litElementVersions/, /class\s+ContextProvider\b/, /class\s+ContextConsumer\b/,
      /function\s+createContext\b/, ...FRAMEWORK_CODE,
    ];
    const modules = tarballFiles.filter((path) => path.startsWith('dist/lib/') && path.endsWith('.js'));
    assert.ok(modules.length >= 5, 'the package has its modules');
    const imported = new Set();
    for (const path of modules) {
      const code = await readFile(join(installed, path), 'utf8');
      for (const pattern of COPIED) assert.doesNotMatch(code, pattern, `${path} holds a copy (${pattern})`);
      for (const specifier of importsOf(code)) {
        if (specifier.startsWith('.')) {
          const target = relative(installed, join(installed, dirname(path), specifier)).split('\\').join('/');
          assert.ok(tarballFiles.includes(target), `${path} imports ${specifier}, which is in the tarball`);
        } else {
          imported.add(specifier);
        }
      }
    }
    const packages = [...new Set([...imported].map(packageOf))];
    assert.deepEqual(packages.sort(), [...EXTERNAL, ...Object.keys(FRAMEWORKS)].sort(), 'the modules import exactly the dependencies and the optional peers');
    // The check itself sees a copy where there is one: the self-contained bundle has lit inside.
    const bundle = await readFile(join(installed, 'dist/sync-connection.js'), 'utf8');
    assert.match(bundle, /litHtmlVersions/);
  });

  it('declares react, vue and @angular/core as optional peer dependencies, and depends on none of them', () => {
    for (const name of Object.keys(FRAMEWORKS)) {
      assert.ok(pkg.peerDependencies?.[name], `${name} is a peer dependency`);
      assert.deepEqual(pkg.peerDependenciesMeta?.[name], { optional: true }, `${name} is optional`);
      assert.equal(pkg.dependencies?.[name], undefined, `${name} is not a dependency`);
    }
    assert.deepEqual(Object.keys(pkg.peerDependencies).sort(), Object.keys(FRAMEWORKS).sort());
  });

  it('keeps each framework to its own entry: no other entry imports one, and the bundle holds none', async () => {
    /** The framework packages a module and what it imports import. */
    const frameworksOf = async (entry) => {
      const specifiers = importsOf(await text(await graph(entry))).filter((s) => !s.startsWith('.'));
      return [...new Set(specifiers.map(packageOf))].filter((name) => /^(react|react-dom|vue|@vue\/.*|@angular\/.*)$/.test(name)).sort();
    };
    for (const [name, entry] of Object.entries(FRAMEWORKS)) {
      assert.deepEqual(await frameworksOf(entry), [name], `${entry} imports ${name} alone`);
    }
    for (const entry of ['dist/lib/index.js', 'dist/lib/element.js', 'dist/lib/service.js', 'dist/lib/compat.js', 'dist/lib/sync-worker.js']) {
      assert.deepEqual(await frameworksOf(entry), [], `${entry} imports no framework`);
    }
    // The bundle is self-contained: a framework would be inside it, with a helper that uses it.
    const bundle = await text(await graph('dist/sync-connection.js'));
    assert.deepEqual(importsOf(bundle).filter((s) => !s.startsWith('.')), [], 'the bundle imports no package');
    for (const pattern of [...FRAMEWORK_CODE, ...Object.values(HELPER_USES)]) {
      assert.doesNotMatch(bundle, pattern, `the bundle holds framework code (${pattern})`);
    }
    // The check finds a helper where it is.
    for (const [entry, pattern] of Object.entries(HELPER_USES)) assert.match(await text(await graph(entry)), pattern, entry);
  });

  it('keeps the older SyncClient API out of the main entry and the self-contained bundle', async () => {
    // Messages only the compat layer and the migration helpers have.
    const COMPAT_ONLY = [/Unknown sync event/, /An operation must be an object/];
    const compat = await text(await graph('dist/lib/compat.js'));
    for (const pattern of COMPAT_ONLY) assert.match(compat, pattern, 'the check finds it where it is');
    for (const entry of ['dist/lib/index.js', 'dist/sync-connection.js']) {
      const code = await text(await graph(entry));
      for (const pattern of COMPAT_ONLY) assert.doesNotMatch(code, pattern, `${entry} carries the compat layer (${pattern})`);
    }
  });

  it('marks exactly the modules that register the elements as sideEffects', async () => {
    assert.deepEqual([...pkg.sideEffects].sort(), ['./dist/lib/index.js', './dist/sync-connection.js', './src/index.ts']);
    for (const path of pkg.sideEffects) assert.ok(tarballFiles.includes(path.replace(/^\.\//, '')), `${path} is in the tarball`);
    // Of the package's modules and sources, only the entries call define() at their top level.
    const registering = [];
    for (const path of tarballFiles.filter((p) => /^(dist\/lib\/.*\.js|src\/.*\.ts)$/.test(p))) {
      const code = await readFile(join(installed, path), 'utf8');
      if (/^[A-Za-z_$][\w$]*\.define\(/m.test(code)) registering.push(`./${path}`);
    }
    assert.deepEqual(registering.sort(), ['./dist/lib/index.js', './src/index.ts']);
    const bundle = await readFile(join(installed, 'dist/sync-connection.js'), 'utf8');
    assert.match(bundle, /customElements/);
  });

  it("gives an app's bundler only what the app imports: a protocol helper or <sync-status> alone brings no IndexedDB, worker or client code", async () => {
    const { build } = await import('esbuild');
    const bundle = async (contents) => {
      const result = await build({
        stdin: { contents, resolveDir: app, loader: 'js' },
        bundle: true, write: false, format: 'esm', platform: 'browser', minify: true, logLevel: 'silent',
      });
      return result.outputFiles[0].text;
    };
    const has = (code) => ({
      indexedDB: /indexedDB\.open/.test(code), worker: /new Worker\(/.test(code), lit: /litHtmlVersions/.test(code),
    });
    // Everything, as the main entry registers both elements: what the checks look for is there.
    assert.deepEqual(has(await bundle(`import 'sync-connection';`)), { indexedDB: true, worker: true, lit: true });
    assert.deepEqual(
      has(await bundle(`import { compareLSN } from 'sync-connection/service'; console.log(compareLSN('0/1', '0/2'));`)),
      { indexedDB: false, worker: false, lit: false },
    );
    assert.deepEqual(
      has(await bundle(`import { SyncStatusElement } from 'sync-connection/element'; SyncStatusElement.define();`)),
      { indexedDB: false, worker: false, lit: true },
    );
  });

  it('describes <sync-connection> and <sync-status> in dist/custom-elements.json', async () => {
    const manifest = JSON.parse(await readFile(join(installed, 'dist/custom-elements.json'), 'utf8'));
    const declarations = manifest.modules.flatMap((mod) => mod.declarations ?? []);
    const element = declarations.find((d) => d.tagName === 'sync-connection');
    assert.ok(element, 'sync-connection is declared');
    assert.equal(element.name, 'SyncConnectionElement');
    assert.deepEqual(element.attributes.map((a) => a.name).sort(), [
      'backoff-initial', 'backoff-max', 'client-id', 'connected', 'db-name', 'heartbeat-interval', 'last-lsn',
      'manual', 'pending', 'role', 'status', 'syncing', 'url',
    ]);
    const fields = element.members.filter((m) => m.kind === 'field' && !m.static).map((m) => m.name);
    for (const name of ['url', 'clientId', 'dbName', 'manual', 'heartbeatInterval', 'backoffInitial', 'backoffMax', 'token', 'database', 'createWorker']) {
      assert.ok(fields.includes(name), `property ${name}`);
    }
    const methods = Object.fromEntries(element.members.filter((m) => m.kind === 'method' && !m.static).map((m) => [m.name, (m.parameters ?? []).map((p) => p.name)]));
    assert.deepEqual(methods, {
      connect: [], disconnect: ['graceful'], forceConnect: [], queueOperation: ['operation'], clearOperationQueue: [],
      sendSyncMessage: [], getState: [], onStateChange: ['listener'], getNetworkStatus: [],
      getEntity: ['entityType', 'entityId'], getEntities: ['entityType'], observe: ['entityType', 'listener', 'options'],
    });
    assert.deepEqual(element.members.filter((m) => m.name.startsWith('#') || m.privacy === 'private'), [], 'no private members');
    assert.deepEqual(element.events.map((e) => [e.name, e.type?.text]), [
      ['connected', 'ConnectedEvent'], ['disconnected', 'DisconnectedEvent'], ['reconnecting', 'ReconnectingEvent'],
      ['sync_started', 'SyncStartedEvent'], ['sync_progress', 'SyncProgressEvent'], ['sync_completed', 'SyncCompletedEvent'],
      ['sync_reset', 'SyncResetEvent'], ['changes', 'ChangesEvent'], ['operation_complete', 'OperationCompleteEvent'], ['operation_error', 'OperationErrorEvent'],
      ['state_change', 'StateChangeEvent'], ['message', 'SyncMessageEvent'], ['error', 'SyncErrorEvent'],
    ]);
    assert.deepEqual(element.slots.map((s) => s.name), ['']);
    const status = declarations.find((d) => d.tagName === 'sync-status');
    assert.ok(status, 'sync-status is declared');
    assert.deepEqual(status.cssParts.map((p) => p.name).sort(), ['pending', 'progress', 'status']);
    const registered = manifest.modules.flatMap((mod) => mod.exports ?? []).filter((e) => e.kind === 'custom-element-definition');
    assert.deepEqual(registered, [], 'src/elements registers nothing by itself');
  });
});

// The three tsc runs take most of the time; they run side by side.
describe("an app's TypeScript", { concurrency: true }, () => {
  for (const resolution of ['bundler', 'nodenext']) {
    it(`typechecks against the package with moduleResolution ${resolution}; the wrong usages are errors`, async () => {
      const { code, output } = await typecheck(app, `tsconfig.${resolution}.json`);
      assert.equal(code, 0, output);
    });
  }

  it('fails without the typings: no JSX entry without sync-connection/react, no typed events without the package', async () => {
    const bare = join(temp, 'bare');
    await writeApp(bare);
    await install(bare, installed);
    // A JSX file that does not import sync-connection/react: the element is unknown.
    await writeFile(join(bare, 'src/app.tsx'), NO_JSX_TYPING_TSX);
    // The package's declarations without their `declare global` blocks (tag and event maps).
    for (const path of await filesUnder(join(bare, 'node_modules/sync-connection/dist/types'))) {
      const file = join(bare, 'node_modules/sync-connection/dist/types', path);
      const text = await readFile(file, 'utf8');
      await writeFile(file, text.replace(/declare global \{[\s\S]*?\n\}\n?/g, ''));
    }
    await writeFile(join(bare, 'tsconfig.bare.json'), tsconfig('bundler', ['src/main.ts', 'src/app.tsx'], { skipLibCheck: true }));
    const { code, output } = await typecheck(bare, 'tsconfig.bare.json');
    assert.notEqual(code, 0);
    assert.match(output, /src\/app\.tsx.*Property 'sync-connection' does not exist on type 'JSX\.IntrinsicElements'/);
    assert.match(output, /src\/main\.ts.*Property 'queueOperation' does not exist on type 'Element'/);
    assert.match(output, /src\/main\.ts.*Property 'detail' does not exist on type 'Event'/);
  });
});
