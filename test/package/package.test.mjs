// The package as a user gets it: `npm pack`, installed into a throwaway app without the
// registry (the tarball extracted into node_modules/sync-connection, the dependencies linked from
// this repo's node_modules), then resolved by Node, typechecked by tsc as the app's code, and
// read. Needs a build (dist/); `npm test` runs it after the browser tests, which build.
// Run alone: `npm run build && npm run test:package`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WebSocket } from 'ws';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
const tsc = join(root, 'node_modules/typescript/bin/tsc');

/**
 * What the app links from this repo instead of downloading it: the package's dependencies, the
 * frameworks, and the types a Node app has. Never `pg`: the server must run without it.
 */
const LINKED = ['lit', '@lit/context', 'ws', 'fs-native-extensions', 'jose', 'typescript', 'react', '@types/react', 'vue', '@angular/core', '@types/node'];
/** What the library build must leave to the app's bundler. */
const EXTERNAL = ['lit', '@lit/context'];
/** The Node-only dependencies, which only the server entry uses. */
const SERVER_DEPENDENCIES = ['ws', 'fs-native-extensions', 'jose'];
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

/**
 * Installs the extracted package plus the linked dependencies into `dir`'s node_modules, and
 * links its bins into node_modules/.bin, executable, as npm does.
 */
async function install(dir, packageDir) {
  await mkdir(join(dir, 'node_modules/.bin'), { recursive: true });
  const target = join(dir, 'node_modules/sync-connection');
  await cp(packageDir, target, { recursive: true });
  for (const name of LINKED) {
    await mkdir(dirname(join(dir, 'node_modules', name)), { recursive: true });
    await symlink(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir');
  }
  const { bin = {} } = JSON.parse(await readFile(join(target, 'package.json'), 'utf8'));
  for (const [name, path] of Object.entries(bin)) {
    await chmod(join(target, path), 0o755);
    await symlink(join('../sync-connection', path), join(dir, 'node_modules/.bin', name));
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

const SERVER_TS = `
import { createServer } from 'node:http';
import {
  ALL_SCOPES, createSyncServer, FileSyncStore, jwtAuthenticator, openPostgresStore, openStore, requireToken, SYNC_PATH,
  type Authenticate, type Authorize, type Identity, type OperationHandler, type ScopedEntity, type ScopeOf,
  type SyncServer, type SyncServerOptions, type SyncStore, type WriteRequest,
} from 'sync-connection/server';

const authenticate: Authenticate = async (token, { clientId, request }) =>
  (token === 'secret' && request.headers.host !== undefined ? { id: clientId ?? 'http', scopes: ['team', ALL_SCOPES] } : null);
const scopeOf: ScopeOf = ({ data }) => (typeof data === 'object' && data !== null && 'team' in data ? String(data.team) : '');
const authorize: Authorize = async (identity: Identity, request: WriteRequest, current: ScopedEntity | undefined) =>
  (current?.scope === 'locked' || request.change.entityType === 'audit' ? \`\${identity.id} may not write that\` : true);
const addNote: OperationHandler = async (payload, { identity, now, entity }) => {
  const existing: ScopedEntity | undefined = await entity('note', 'n1');
  return [{ type: 'update', entityType: 'note', entityId: 'n1', data: { payload, owner: identity.id, at: now, was: existing?.data } }];
};
const options: SyncServerOptions = {
  dataDir: './data', port: 0, host: '127.0.0.1', batchSize: 500, authenticate, scopeOf, authorize,
  operations: { 'add-note': addNote }, allowedOrigins: ['https://app.example'], allowedHosts: ['localhost'], limits: { maxDepth: 32 },
};
const standalone: SyncServer = await createSyncServer(options);
const port: number = standalone.port;
const stats = await standalone.stats();
const clients: number = stats.clients;
void port, clients;

// Attached to the app's own server at a path, with the HTTP API mounted by the app.
const app = createServer((request, response) => {
  attached.handleRequest(request, response).then((handled: boolean) => {
    if (!handled) response.writeHead(404).end();
  });
});
const attached = await createSyncServer({ server: app, path: SYNC_PATH, dataDir: './data2', authenticate: requireToken('secret') });
const jwt = await createSyncServer({ dataDir: './data5', authenticate: jwtAuthenticator({ secret: 'a secret of at least thirty-two bytes', audience: 'notes' }) });
const reset: number = jwt.reset((identity: Identity) => identity.id === 'alice', 'your teams changed');
void reset;
app.listen(0);
const path: string = attached.path;
void path;

const store: SyncStore = (await FileSyncStore.open('./data3')).store;
const other: SyncStore = await openStore({ dataDir: './data4' });
const postgres: Promise<SyncStore> = openPostgresStore('postgres://localhost/sync');
await (await createSyncServer({ store })).close();
void other, postgres;
await Promise.all([standalone.close(), attached.close(), jwt.close()]);

// @ts-expect-error the port is a number
await createSyncServer({ dataDir: './d', port: '8080' });
// @ts-expect-error the server is an http.Server
await createSyncServer({ server: 'localhost', dataDir: './d' });
// @ts-expect-error authenticate returns an identity, null, or a boolean
await createSyncServer({ dataDir: './d', authenticate: () => 'yes' });
// @ts-expect-error an identity's scopes are strings
await createSyncServer({ dataDir: './d', authenticate: () => ({ id: 'a', scopes: [1] }) });
// @ts-expect-error authorize answers true or the reason, not false
await createSyncServer({ dataDir: './d', authorize: () => false });
// @ts-expect-error an operation handler returns the list of changes
await createSyncServer({ dataDir: './d', operations: { 'add-note': () => 'done' } });
// @ts-expect-error handleRequest takes the request and its response
void attached.handleRequest(app);
// @ts-expect-error no such option
await createSyncServer({ dataDir: './d', staticDirectory: '.' });
`;

const CONFORMANCE_TS = `
import { runConformance, formatResult, type ConformanceReport, type RuleResult } from 'sync-connection/conformance';

const report: ConformanceReport = await runConformance({ url: 'ws://127.0.0.1:8080/api/sync', token: 'secret', timeout: 5000 });
const failed: RuleResult[] = report.results.filter((result) => result.status === 'fail');
console.log(failed.map(formatResult).join('\\n'));
// @ts-expect-error the URL is required
await runConformance({ token: 'secret' });
// @ts-expect-error a status is pass, warn, fail or skip
const status: 'ok' = report.results[0]!.status;
void status;
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
  await writeFile(join(dir, 'src/server.ts'), SERVER_TS);
  await writeFile(join(dir, 'src/conformance.ts'), CONFORMANCE_TS);
  // A strict Node app: Node's types only, no DOM, and the package's declarations checked too.
  await writeFile(join(dir, 'tsconfig.server.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022', lib: ['ES2022'], module: 'NodeNext', moduleResolution: 'nodenext', strict: true,
      noEmit: true, skipLibCheck: false, types: ['node'],
    },
    files: ['src/server.ts', 'src/conformance.ts'],
  }));
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

  it('declares react, vue, @angular/core and pg as optional peer dependencies, and depends on none of them', () => {
    for (const name of [...Object.keys(FRAMEWORKS), 'pg']) {
      assert.ok(pkg.peerDependencies?.[name], `${name} is a peer dependency`);
      assert.deepEqual(pkg.peerDependenciesMeta?.[name], { optional: true }, `${name} is optional`);
      assert.equal(pkg.dependencies?.[name], undefined, `${name} is not a dependency`);
    }
    assert.deepEqual(Object.keys(pkg.peerDependencies).sort(), [...Object.keys(FRAMEWORKS), 'pg'].sort());
    assert.deepEqual(Object.keys(pkg.dependencies).sort(), [...EXTERNAL, ...SERVER_DEPENDENCIES].sort());
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

// ---- the server entry and the commands ------------------------------------------------------

/** Strings that only server code holds: the log's magic, the WebSocket server, the PostgreSQL table, the entry's function. */
const SERVER_CODE = [/SYNCLOG2/, /WebSocketServer/, /sync_change_log/, /createSyncServer/];
/** Node's built-in modules, by either name. */
const NODE_BUILTIN = /^(node:.*|fs|fs\/promises|http|https|net|tls|path|os|crypto|child_process|stream|zlib|url|events|worker_threads)$/;

/**
 * Starts an installed command in the app; `exited` resolves with its code, `line()` with its
 * next line on stdout. Killed after the test.
 */
function command(t, name, args, env = {}) {
  const child = spawn(join(app, 'node_modules/.bin', name), args, { cwd: app, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  const waiting = [];
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    for (const wake of waiting.splice(0)) wake();
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
    for (const wake of waiting.splice(0)) wake();
  });
  const exited = once(child, 'exit').then(([code]) => code);
  return {
    child,
    exited,
    output: () => ({ stdout, stderr }),
    /** The first line on stdout, once it is there. */
    async line() {
      while (!stdout.includes('\n')) {
        const ended = await Promise.race([exited.then(() => true), new Promise((resolve) => waiting.push(() => resolve(false)))]);
        if (ended && !stdout.includes('\n')) throw new Error(`${name} exited before printing a line: ${stderr}`);
      }
      return stdout.slice(0, stdout.indexOf('\n'));
    },
    /** The first match of `pattern` on stderr, once it is there. */
    async printed(pattern) {
      for (;;) {
        const match = pattern.exec(stderr);
        if (match) return match;
        const ended = await Promise.race([exited.then(() => true), new Promise((resolve) => waiting.push(() => resolve(false)))]);
        if (ended && !pattern.test(stderr)) throw new Error(`${name} exited without printing ${pattern}: ${stderr}`);
      }
    },
  };
}

/** Opens a WebSocket and resolves with a reader of its frames, parsed. */
async function socket(t, url) {
  const ws = new WebSocket(url);
  t.after(() => ws.terminate());
  const frames = [];
  const waiting = [];
  ws.on('message', (data) => {
    frames.push(JSON.parse(String(data)));
    for (const wake of waiting.splice(0)) wake();
  });
  await once(ws, 'open');
  return {
    send: (frame) => ws.send(JSON.stringify(frame)),
    /** Frames up to and including the first of `type`. */
    async until(type) {
      for (;;) {
        const index = frames.findIndex((frame) => frame.type === type);
        if (index >= 0) return frames.splice(0, index + 1);
        await new Promise((resolve) => waiting.push(resolve));
      }
    },
  };
}

describe('the server entry, sync-connection/server', () => {
  it('imports in Node without pg installed, starting nothing, and gives the server and the stores', async () => {
    assert.ok(!existsSync(join(app, 'node_modules/pg')), 'the app has no pg');
    const script = `
      const server = await import('sync-connection/server');
      console.log(JSON.stringify({ names: Object.keys(server).sort(), handles: process.getActiveResourcesInfo().filter((r) => !/^(TTYWrap|CloseReq|FSReqCallback|FSReqPromise)$/.test(r)) }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: app });
    const { names, handles } = JSON.parse(stdout);
    for (const name of ['createSyncServer', 'FileSyncStore', 'openPostgresStore', 'openStore', 'requireToken', 'jwtAuthenticator', 'SYNC_PATH', 'StoreUnavailableError']) {
      assert.ok(names.includes(name), `exports ${name}`);
    }
    assert.deepEqual(handles, [], 'importing it opened no socket, timer or listener (file reads of the import itself aside)');
    const kit = await run(process.execPath, ['--input-type=module', '-e', "console.log(typeof (await import('sync-connection/conformance')).runConformance)"], { cwd: app });
    assert.equal(kit.stdout.trim(), 'function', 'sync-connection/conformance gives runConformance');
    assert.equal(pkg.exports['./server'].default, undefined, 'no condition but node: a browser bundler finds nothing to bundle');
  });

  it('typechecks in a strict Node app (create, attach, options, stores, the conformance kit); the wrong usages are errors', async () => {
    const { code, output } = await typecheck(app, 'tsconfig.server.json');
    assert.equal(code, 0, output);
  });

  it('keeps the browser bundles free of server code: no ws, no Node built-ins, no server modules', async () => {
    const browser = tarballFiles.filter((path) => path.startsWith('dist/lib/') && path.endsWith('.js')).concat(['dist/sync-connection.js']);
    for (const entry of browser) {
      const files = await graph(entry);
      assert.deepEqual([...files].filter((path) => path.startsWith('dist/node/')), [], `${entry} imports no server module`);
      const code = await text(files);
      const imports = importsOf(code).filter((specifier) => !specifier.startsWith('.'));
      assert.deepEqual(imports.filter((specifier) => SERVER_DEPENDENCIES.includes(packageOf(specifier)) || NODE_BUILTIN.test(specifier)), [], `${entry} imports nothing of Node's`);
      for (const pattern of SERVER_CODE) assert.doesNotMatch(code, pattern, `${entry} holds server code (${pattern})`);
    }
    // The check finds the server where it is.
    const server = await text(tarballFiles.filter((path) => path.startsWith('dist/node/server/') && path.endsWith('.js')));
    for (const pattern of SERVER_CODE) assert.match(server, pattern);
    assert.ok(importsOf(await readFile(join(installed, 'dist/node/server/sync-server.js'), 'utf8')).includes('ws'));
    assert.ok(importsOf(await readFile(join(installed, 'dist/node/conformance/session.js'), 'utf8')).includes('ws'));
  });
});

describe('the sync-connection-server command', () => {
  it('prints its usage with --help', async (t) => {
    const help = command(t, 'sync-connection-server', ['--help']);
    assert.equal(await help.exited, 0);
    assert.match(help.output().stdout, /^Usage: sync-connection-server \[options\]/);
    assert.match(help.output().stdout, /--data-dir DIR/);
  });

  it('starts on a free port from the installed package, answers a sync and a write, and stops on SIGTERM', async (t) => {
    const dataDir = join(temp, 'server-data');
    const server = command(t, 'sync-connection-server', ['--port', '0', '--data-dir', dataDir]);
    const listening = JSON.parse(await server.line());
    assert.equal(listening.event, 'listening');
    const client = await socket(t, `ws://127.0.0.1:${listening.port}/api/sync`);
    client.send({ type: 'sync', clientId: 'package-test', lastLSN: '0/0' });
    assert.deepEqual((await client.until('sync_complete')).map((frame) => frame.type), ['sync_start', 'sync_complete']);
    client.send({ type: 'operation', operation: { id: 'op-1', type: 'upsert', payload: { entityType: 'note', entityId: 'a', data: { text: 'hi' } } } });
    const frames = await client.until('operation_complete');
    assert.deepEqual(frames.map((frame) => frame.type), ['changes', 'operation_complete']);
    assert.equal((await fetch(`${listening.url}/`)).status, 404, 'it serves no static files unless told to');
    server.child.kill('SIGTERM');
    assert.equal(await server.exited, 0);
  });

  it('without pg installed, --store postgres:// fails to start, saying what to install', async (t) => {
    const server = command(t, 'sync-connection-server', ['--port', '0', '--store', 'postgres://sync@127.0.0.1:1/sync']);
    assert.equal(await server.exited, 1);
    assert.match(server.output().stderr, /needs the PostgreSQL driver, which is not installed: npm install pg/);
  });
});

describe('the sync-connection-conformance command', () => {
  it("from the installed package, checks the installed server as the demo runs it, with a user's token: every rule passes but the 32-bit boundary, which a fresh log is far from", async (t) => {
    const server = command(t, 'sync-connection-server', ['--port', '0', '--data-dir', join(temp, 'conformance-data'), '--demo']);
    const { port } = JSON.parse(await server.line());
    // No page is served, so each user's token is printed instead of the page's address.
    const [, alice] = await server.printed(/^sync server \(demo\): alice's token: (\S+)$/m);
    await server.printed(/^sync server \(demo\): bob's token: \S+$/m);
    assert.doesNotMatch(server.output().stderr, /open http/);
    const url = `ws://127.0.0.1:${port}/api/sync`;
    const refused = command(t, 'sync-connection-conformance', [url]);
    assert.equal(await refused.exited, 2, 'without a token the kit cannot run');
    const kit = command(t, 'sync-connection-conformance', [url, '--token', alice, '--boundary-bytes', '0']);
    assert.equal(await kit.exited, 0, kit.output().stdout + kit.output().stderr);
    const { stdout, stderr } = kit.output();
    assert.match(stdout, /^SKIP  lsn-boundary .*\n {6}the log did not cross a 32-bit boundary/m);
    assert.match(stdout, /^17 rules: 16 passed, 0 failed, 0 warnings, 1 skipped/m);
    assert.ok(!(stdout + stderr).includes(alice), 'the kit never prints the token');
    const help = command(t, 'sync-connection-conformance', ['--help']);
    assert.equal(await help.exited, 0);
    assert.match(help.output().stdout, /^Usage: sync-connection-conformance ws:\/\/host\/api\/sync \[options\]/);
  });
});
