/** The reference server's HTTP side: the API, the static files it serves and never serves, and the body limit. */
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { getJson, postChanges, startServer, tempDir, update } from './helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 15_000 };

test('the HTTP API reports stats and entities, takes changes and refuses invalid ones', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const ok = await postChanges(server.url, [update('u', '1', { name: 'Ada' }), { type: 'delete', entityType: 'u', entityId: '2' }]);
  assert.equal(ok.status, 200);
  for (const bad of [[], [{ type: 'update', entityType: 'u', entityId: '1' }], 'nope']) {
    const refused = await postChanges(server.url, bad);
    assert.equal(refused.status, 400);
    assert.equal(typeof refused.body.error, 'string');
  }
  const notJson = await fetch(`${server.url}/api/changes`, { method: 'POST', body: '{' });
  assert.equal(notJson.status, 400);
  const response = await fetch(`${server.url}/api/stats`);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  const stats = (await response.json()) as Record<string, unknown>;
  assert.equal(stats.lsn, ok.body.lsn);
  assert.equal(stats.records, 1);
  assert.equal(stats.changes, 2);
  assert.equal(stats.entities, 1);
  const entities = await getJson(`${server.url}/api/entities`);
  assert.deepEqual(entities.entities, [{ entityType: 'u', entityId: '1', data: { name: 'Ada' } }]);
});

test('static files: only the page, /dist/, /bench/ and /examples/, never dotfiles or the data', BOUNDED, async (t) => {
  const root = await tempDir(t);
  const files: Record<string, string> = {
    'index.html': '<!doctype html><title>x</title>',
    'dist/x.js': 'export {};',
    'dist/.hidden.js': 'secret',
    'dist/.cache/y.js': 'secret',
    'bench/run.html': '<!doctype html>',
    'examples/demo/index.html': '<!doctype html>',
    '.git/HEAD': 'ref: refs/heads/main',
    '.env': 'SECRET=1',
    'package.json': '{}',
    'server/main.ts': 'secret',
    'node_modules/ws/package.json': '{}',
    'secret.txt': 'secret',
  };
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), text);
  }
  await symlink(join(root, 'package.json'), join(root, 'dist', 'link.js'));
  const server = await startServer(t, { dataDir: join(root, 'data'), staticDir: root });
  await postChanges(server.url, [update('a', '1', 1)]);
  const status = async (path: string) => {
    const response = await fetch(`${server.url}${path}`);
    await response.body?.cancel();
    return { status: response.status, type: response.headers.get('content-type') ?? '' };
  };
  for (const [path, type] of [
    ['/', /^text\/html/],
    ['/index.html', /^text\/html/],
    ['/dist/x.js', /^text\/javascript/],
    ['/bench/run.html', /^text\/html/],
    ['/examples/demo/', /^text\/html/],
  ] as const) {
    const answer = await status(path);
    assert.equal(answer.status, 200, `${path} is served`);
    assert.match(answer.type, type, `${path} has its content type`);
  }
  for (const path of [
    '/data/sync.log',
    '/data/lock',
    '/.git/HEAD',
    '/.env',
    '/package.json',
    '/server/main.ts',
    '/node_modules/ws/package.json',
    '/dist/.hidden.js',
    '/dist/.cache/y.js',
    '/dist/%2e%2e/package.json',
    '/dist/..%2fpackage.json',
    '/dist/%2e%2e%2fpackage.json',
    '/..%2fsecret.txt',
    '/%2e%2e/secret.txt',
    '/dist/link.js',
    '/dist',
    '/missing.js',
  ]) {
    assert.equal((await status(path)).status, 404, `${path} is not served`);
  }
});

test('the data directory is not served even inside a served folder', BOUNDED, async (t) => {
  const root = await tempDir(t);
  await mkdir(join(root, 'examples'), { recursive: true });
  await writeFile(join(root, 'examples', 'demo.html'), '<!doctype html>');
  const server = await startServer(t, { dataDir: join(root, 'examples', 'data'), staticDir: root });
  await postChanges(server.url, [update('a', '1', 1)]);
  const log = await fetch(`${server.url}/examples/data/sync.log`);
  await log.body?.cancel();
  assert.equal(log.status, 404, 'the log is not served');
  const demo = await fetch(`${server.url}/examples/demo.html`);
  await demo.body?.cancel();
  assert.equal(demo.status, 200, 'its neighbours are');
});

test('a POST body over the limit is refused with 413', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), maxBodyBytes: 1024 });
  const { status } = await postChanges(server.url, [update('big', '1', 'x'.repeat(4096))]);
  assert.equal(status, 413);
  assert.equal((await server.stats()).records, 0);
});
