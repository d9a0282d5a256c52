/**
 * Identities from the attacker's side: tokens that must not pass, a socket that tries to become
 * someone else, HTTP without a token or from another page, host names that are not the server's.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, test } from 'node:test';
import { SignJWT } from 'jose';
import { WebSocket } from 'ws';
import { createSyncServer, type SyncServer, type SyncServerOptions } from '../sync-server.ts';
import { FileSyncStore } from '../store.ts';
import { allEntities, eventually, startCli, tempDir, TestClient, wsUrl } from './helpers.ts';
import { answerTo, note, scopedOptions, scopeOf, SECRET, seen, syncedAs, tokenFor } from './identity-helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';

const BOUNDED = { timeout: 60_000 };

let cluster: PostgresCluster | undefined;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

async function serve(t: { after(fn: () => Promise<void>): void }, options: SyncServerOptions = {}, postgres = false): Promise<SyncServer> {
  const where = postgres ? { storeUrl: await cluster!.createDatabase() } : { dataDir: await tempDir(t) };
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, ...scopedOptions, ...where, ...options });
  t.after(() => server.close());
  return server;
}

/** Sends `sync` with `token` as the first frame; resolves with the close code (undefined if the sync was served). */
async function closeCodeFor(server: SyncServer, token: unknown, t: { after(fn: () => void): void }): Promise<number | undefined> {
  const client = await TestClient.open(wsUrl(server), t);
  client.send({ type: 'sync', clientId: 'mallory', lastLSN: '0/0', token });
  client.send(note('sneaky', 'x', { scope: 'alice' }));
  const served = client.until('sync_complete').then(() => undefined, () => undefined);
  const closed = await Promise.race([client.closed, served]);
  return closed?.code;
}

test('no token, a wrong token, an expired, not-yet-valid, tampered or foreign JWT, or one for another audience: closed with 4001, nothing stored, no token in the log', BOUNDED, async (t) => {
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.message);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const server = await serve(t, {
    authenticate: async (token, context) => {
      if (token === 'throw') throw new Error(`lookup failed for ${token}`);
      const { jwtAuthenticator } = await import('../jwt-auth.ts');
      return jwtAuthenticator({ secret: SECRET, audience: 'notes', issuer: 'https://id.example' })(token, context);
    },
  });
  const claims = { aud: 'notes', iss: 'https://id.example' };
  const good = await tokenFor('alice', ['alice'], { claims });
  const [header, payload, signature] = good.split('.');
  const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), scopes: ['*'] })).toString('base64url');
  const bad: Record<string, unknown> = {
    'no token': undefined,
    'a wrong token': 'not-a-jwt',
    'a token of the wrong type': { sub: 'alice' },
    'an expired JWT': await tokenFor('alice', ['alice'], { claims, expires: Math.floor(Date.now() / 1000) - 60 }),
    'a JWT not valid yet': await tokenFor('alice', ['alice'], { claims: { ...claims, nbf: Math.floor(Date.now() / 1000) + 3600 } }),
    'a tampered JWT (scopes widened)': `${header}.${forged}.${signature}`,
    'a JWT signed with another secret': await tokenFor('alice', ['alice'], { claims, secret: 'another secret that is long enough!!' }),
    'a JWT for another audience': await tokenFor('alice', ['alice'], { claims: { ...claims, aud: 'billing' } }),
    'a JWT from another issuer': await tokenFor('alice', ['alice'], { claims: { ...claims, iss: 'https://evil.example' } }),
    'an unsigned JWT (alg none)': `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`,
    'a JWT without a subject': await new SignJWT({ scopes: ['*'], ...claims }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET)),
    'a hook that throws': 'throw',
  };
  for (const [what, token] of Object.entries(bad)) {
    assert.equal(await closeCodeFor(server, token, t), 4001, what);
  }
  assert.equal((await server.stats()).records, 0, 'nothing was stored');
  const { frames } = await syncedAs(t, server, good);
  assert.equal(frames.at(-1)?.type, 'sync_complete', 'the good token is served');
  assert.ok(warnings.some((warning) => warning.includes('lookup failed for [token]')), 'the hook\'s failure is logged, the token cut out');
  for (const token of Object.values(bad).filter((value): value is string => typeof value === 'string' && value.length > 8)) {
    assert.ok(!warnings.join('\n').includes(token), 'no token in the log');
  }
});

test('a second sync on a socket that names another identity is closed with 4003; the same identity may sync again', BOUNDED, async (t) => {
  const server = await serve(t);
  const alice = await tokenFor('alice', ['alice']);
  const aliceAgain = await tokenFor('alice', ['alice', 'shared']);
  const bob = await tokenFor('bob', ['bob']);
  const { client } = await syncedAs(t, server, alice);
  client.send({ type: 'sync', clientId: 'test-client', lastLSN: '0/0', token: aliceAgain });
  assert.equal((await client.until('sync_complete')).at(-1)?.type, 'sync_complete');
  client.send({ type: 'sync', clientId: 'test-client', lastLSN: '0/0', token: bob });
  client.send(note('as-bob', 'b1', { scope: 'bob' }));
  const closed = await client.closed;
  assert.deepEqual(closed, { code: 4003, reason: 'forbidden: a connection keeps the identity of its first sync' });
  assert.equal((await server.stats()).records, 0);
});

for (const postgres of [false, true]) {
  const kind = postgres ? 'PostgreSQL' : 'embedded log';
  test(`${kind}: over HTTP, every route asks for the identity; reads are filtered by scope and paged; writes go through the same rules`, BOUNDED, async (t) => {
    const server = await serve(t, {}, postgres);
    const admin = await tokenFor('admin', ['*']);
    const bob = await tokenFor('bob', ['bob', 'shared']);
    const post = (token: string | undefined, changes: unknown[]) => fetch(`${server.url}/api/changes`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) },
      body: JSON.stringify({ changes }),
    });
    const seed = Array.from({ length: 7 }, (_, i) => ({ type: 'update', entityType: 'note', entityId: `n${i}`, data: { scope: ['alice', 'bob', 'shared'][i % 3] } }));
    assert.equal((await post(admin, seed)).status, 200);
    for (const path of ['/api/stats', '/api/entities', '/api/entities?limit=2']) {
      const anonymous = await fetch(`${server.url}${path}`);
      assert.equal(anonymous.status, 401, `${path} without a token`);
      assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await fetch(`${server.url}${path}`, { headers: { Authorization: 'Bearer wrong' } })).status, 401, `${path} with a wrong token`);
    }
    assert.equal((await post(undefined, [seed[0]])).status, 401);
    const asBob = await allEntities(server.url, 2, bob);
    assert.deepEqual(asBob.map((entity) => entity.entityId).sort(), ['n1', 'n2', 'n4', 'n5']);
    assert.equal((await allEntities(server.url, 3, admin)).length, 7);
    assert.equal((await fetch(`${server.url}/api/stats`, { headers: { Authorization: `Bearer ${bob}` } })).status, 403, 'the stats are for readers of every scope');
    // Into, over and deleting alice's notes: 403, nothing stored.
    for (const change of [
      { type: 'update', entityType: 'note', entityId: 'planted', data: { scope: 'alice' } },
      { type: 'update', entityType: 'note', entityId: 'n0', data: { scope: 'bob' } },
      { type: 'delete', entityType: 'note', entityId: 'n0' },
    ]) {
      const refused = await post(bob, [change]);
      assert.equal(refused.status, 403, JSON.stringify(change));
      assert.match(((await refused.json()) as { error: string }).error, /not allowed/);
    }
    assert.equal((await post(bob, [{ type: 'update', entityType: 'note', entityId: 'b9', data: { scope: 'bob' } }])).status, 200);
    assert.deepEqual((await allEntities(server.url, 100, admin)).find((entity) => entity.entityId === 'n0')?.data, { scope: 'alice' });
  });
}

test('CORS: no header for another origin unless allowedOrigins names it; an open server without allowedOrigins stays readable from any page', BOUNDED, async (t) => {
  const guarded = await serve(t);
  const token = await tokenFor('admin', ['*']);
  const fromEvil = await fetch(`${guarded.url}/api/entities`, { headers: { Origin: 'https://evil.example', Authorization: `Bearer ${token}` } });
  assert.equal(fromEvil.status, 200, 'the request itself is answered (the browser would not let the page read it)');
  assert.equal(fromEvil.headers.get('access-control-allow-origin'), null);
  const preflight = await fetch(`${guarded.url}/api/changes`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } });
  assert.equal(preflight.headers.get('access-control-allow-origin'), null);

  const listed = await serve(t, { allowedOrigins: ['https://app.example'] });
  const fromApp = await fetch(`${listed.url}/api/entities`, { headers: { Origin: 'https://app.example', Authorization: `Bearer ${token}` } });
  assert.equal(fromApp.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(fromApp.headers.get('vary'), 'Origin');
  const fromOther = await fetch(`${listed.url}/api/entities`, { headers: { Origin: 'https://evil.example', Authorization: `Bearer ${token}` } });
  assert.equal(fromOther.headers.get('access-control-allow-origin'), null);

  const open = await createSyncServer({ port: 0, heartbeatInterval: 0, dataDir: await tempDir(t) });
  t.after(() => open.close());
  const anyPage = await fetch(`${open.url}/api/stats`, { headers: { Origin: 'https://anywhere.example' } });
  assert.equal(anyPage.headers.get('access-control-allow-origin'), '*');
});

test('a WebSocket from an origin outside allowedOrigins, and any request to a host name outside allowedHosts, is refused with 403', BOUNDED, async (t) => {
  const server = await serve(t, { allowedOrigins: ['https://app.example'] });
  const statusOf = (headers: Record<string, string>) => new Promise<number>((resolve, reject) => {
    const socket = new WebSocket(wsUrl(server), { headers });
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.on('open', () => {
      resolve(101);
      socket.terminate();
    });
    socket.on('error', reject);
  });
  assert.equal(await statusOf({ Origin: 'https://evil.example' }), 403);
  assert.equal(await statusOf({ Origin: 'https://app.example' }), 101);
  assert.equal(await statusOf({}), 101, 'a client that is no web page sends no Origin');
  // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
  assert.equal(await statusOf({ Origin: 'https://app.example', Host: `evil.example:${server.port}` }), 403);
  const rebound = await new Promise<number>((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port: server.port, path: '/api/stats', headers: { Host: `evil.example:${server.port}` } }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject).end();
  });
  assert.equal(rebound, 403);
  for (const host of [`localhost:${server.port}`, `127.0.0.1:${server.port}`, 'LOCALHOST']) {
    const answered = await new Promise<number>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: server.port, path: '/api/stats', headers: { Host: host } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      }).on('error', reject).end();
    });
    assert.equal(answered, 401, `${host} is one of the server's names (and asks for a token)`);
  }
});

test('embedded log: the scope index and the entities\' scopes come back from the log after a restart', BOUNDED, async (t) => {
  const dataDir = await tempDir(t);
  const first = await createSyncServer({ port: 0, heartbeatInterval: 0, ...scopedOptions, dataDir });
  const admin = await tokenFor('admin', ['*']);
  const { client } = await syncedAs(t, first, admin);
  client.send(note('a', 'a1', { scope: 'alice' }));
  client.send(note('m', 'm1', { scope: 'alice' }));
  client.send(note('move', 'm1', { scope: 'bob' }));
  await answerTo(client, 'move');
  client.socket.terminate();
  await first.close();
  const { store } = await FileSyncStore.open(dataDir, { scopeOf });
  const second = await createSyncServer({ port: 0, heartbeatInterval: 0, ...scopedOptions, store });
  t.after(async () => {
    await second.close();
    await store.close();
  });
  const alice = await syncedAs(t, second, await tokenFor('alice', ['alice']));
  assert.deepEqual(seen(alice.frames), ['a1 update', 'm1 update', 'm1 delete']);
  assert.equal((await store.entity('note', 'm1'))?.scope, 'bob');
  // The default rule reads the scope back too: alice may no longer write m1.
  alice.client.send(note('steal', 'm1', { scope: 'alice' }));
  assert.match(JSON.stringify((await answerTo(alice.client, 'steal')).answer), /not allowed/);
});

test('CLI: SYNC_JWT_SECRET makes clients authenticate with JWTs (a short secret, or one beside SYNC_TOKEN, is refused at start); --demo prints its users\' tokens, and bob never sees alice\'s private notes', BOUNDED, async (t) => {
  for (const env of [{ SYNC_JWT_SECRET: 'short' }, { SYNC_JWT_SECRET: SECRET, SYNC_TOKEN: 'x' }]) {
    const refused = await startCli(t, ['--data-dir', await tempDir(t)], { env }).then(() => 'started', (error: unknown) => String(error));
    assert.match(refused, /SYNC_JWT_SECRET/);
  }
  const cli = await startCli(t, ['--data-dir', await tempDir(t)], { env: { SYNC_JWT_SECRET: SECRET } });
  await eventually(() => /clients authenticate with JWTs signed with SYNC_JWT_SECRET/.test(cli.stderr()), 5000, 'the start-up line');
  const port = { port: cli.port };
  const served = await TestClient.open(wsUrl(port), t);
  served.send({ type: 'sync', clientId: 'c', lastLSN: '0/0', token: await tokenFor('carol', ['*']) });
  assert.equal((await served.until('sync_complete')).at(-1)?.type, 'sync_complete');
  const refused = await TestClient.open(wsUrl(port), t);
  refused.send({ type: 'sync', clientId: 'c', lastLSN: '0/0', token: await tokenFor('carol', ['*'], { secret: 'another secret that is long enough!!' }) });
  assert.equal((await refused.closed).code, 4001);

  const demo = await startCli(t, ['--data-dir', await tempDir(t), '--demo']);
  await eventually(() => /open http:\/\/\S+#alice=/.test(demo.stderr()), 5000, 'the demo address');
  const tokens = new URLSearchParams(/open http:\/\/\S+#(\S+)/.exec(demo.stderr())![1]);
  const [alice, bob] = [tokens.get('alice')!, tokens.get('bob')!];
  const demoPort = { port: demo.port };
  const asAlice = await TestClient.open(wsUrl(demoPort), t);
  asAlice.send({ type: 'sync', clientId: 'alice', lastLSN: '0/0', token: alice });
  await asAlice.until('sync_complete');
  const noteOf = (id: string, data: unknown) => ({ type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'notes', entityId: id, data } } });
  asAlice.send(noteOf('secret', { text: 'mine', private: true, owner: 'alice' }));
  asAlice.send(noteOf('hello', { text: 'hello', owner: 'alice' }));
  asAlice.send(noteOf('forged', { text: 'as bob', private: true, owner: 'bob' }));
  // The refusal may come before the notes ahead of it are durable: wait for every answer.
  const answers = new Map<string, string>();
  while (answers.size < 3) {
    const frame = await asAlice.next();
    if (frame.type === 'operation_complete' || frame.type === 'operation_error') answers.set(frame.id, JSON.stringify(frame));
  }
  assert.match(answers.get('hello')!, /operation_complete/);
  assert.match(answers.get('forged')!, /not allowed/, 'alice cannot write into bob\'s private notes');
  const asBob = await TestClient.open(wsUrl(demoPort), t);
  asBob.send({ type: 'sync', clientId: 'bob', lastLSN: '0/0', token: bob });
  assert.deepEqual(seen(await asBob.until('sync_complete')), ['hello update']);
});
