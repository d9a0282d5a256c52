import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import express from 'express';
import { WebSocket, WebSocketServer } from 'ws';
import { FileSyncStore } from '../store.ts';
import { createSyncServer, type SyncServer } from '../sync-server.ts';
import type { SyncServerOptions } from '../server-options.ts';
import { getJson, postChanges, tempDir, TestClient, update } from './helpers.ts';
import { answerTo, note, scopedOptions, seen, syncedAs, tokenFor } from './identity-helpers.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 15_000 };

/** Starts the app's server on a free port; after the test it is closed, with every socket it had (upgraded ones too). */
async function listen(t: { after(fn: () => Promise<void>): void }, server: Server): Promise<number> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

async function attach(t: { after(fn: () => Promise<void>): void }, server: Server, options: SyncServerOptions = {}): Promise<SyncServer> {
  const sync = await createSyncServer({ server, heartbeatInterval: 0, dataDir: await tempDir(t), ...options });
  t.after(() => sync.close());
  return sync;
}

/** How the server answers a WebSocket upgrade that it does not accept: its HTTP status. */
function refusedUpgrade(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers });
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.on('open', () => {
      socket.terminate();
      reject(new Error(`${url} accepted the WebSocket`));
    });
    socket.on('error', (error) => reject(error));
  });
}

function upsert(id: string, entityId: string) {
  return { type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'note', entityId, data: { id } } } };
}

async function text(url: string, init?: RequestInit): Promise<{ status: number; body: string }> {
  const response = await fetch(url, init);
  return { status: response.status, body: await response.text() };
}

/** An app on Node's http server that mounts the sync server's API and answers everything else itself. */
function appServer(sync: () => SyncServer | undefined): Server {
  return createServer((request: IncomingMessage, response: ServerResponse) => {
    void (sync()?.handleRequest(request, response) ?? Promise.resolve(false)).then((handled) => {
      if (!handled) response.end(`app ${request.url}`);
    });
  });
}

/** The status of a GET with these headers (`Host` included, which fetch does not send as given). */
function statusOf(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    httpRequest(url, { headers }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject).end();
  });
}

test("attached to an app's Node http server, it takes the upgrades for its path and leaves the app its requests and WebSockets", BOUNDED, async (t) => {
  let sync: SyncServer | undefined;
  const app = appServer(() => sync);
  // The app's own WebSocket endpoint, and its own answer to upgrades it does not know.
  const echo = new WebSocketServer({ noServer: true });
  echo.on('connection', (socket) => socket.on('message', (data) => socket.send(`echo ${data.toString()}`)));
  app.on('upgrade', (request, socket, head) => {
    if (request.url === '/app-ws') echo.handleUpgrade(request, socket, head, (ws) => echo.emit('connection', ws, request));
    else if (request.url !== '/sync') socket.end('HTTP/1.1 418 I\'m a teapot\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });
  sync = await attach(t, app, { path: '/sync' });
  assert.equal(sync.port, 0, 'the app server does not listen yet');
  assert.equal(sync.url, '');
  const port = await listen(t, app);
  assert.equal(sync.port, port);
  assert.equal(sync.url, `http://127.0.0.1:${port}`);
  assert.equal(sync.path, '/sync');
  const base = `http://127.0.0.1:${port}`;

  const client = await TestClient.open(`ws://127.0.0.1:${port}/sync`, t);
  await client.sync('0/0');
  client.send(upsert('op-1', 'a'));
  const frames = await client.until('operation_complete');
  assert.deepEqual(frames.map((frame) => frame.type), ['changes', 'operation_complete']);

  const appSocket = new WebSocket(`ws://127.0.0.1:${port}/app-ws`);
  t.after(() => appSocket.terminate());
  await once(appSocket, 'open');
  appSocket.send('hi');
  assert.equal(String((await once(appSocket, 'message'))[0]), 'echo hi');
  assert.equal(await refusedUpgrade(`ws://127.0.0.1:${port}/api/sync`), 418, "another path's upgrade is the app's to answer");

  assert.deepEqual(await text(`${base}/hello`), { status: 200, body: 'app /hello' });
  const stats = await getJson(`${base}/api/stats`);
  assert.equal(stats.operationFramesReceived, 1);
  assert.equal(stats.clients, 1);
  const entities = await getJson(`${base}/api/entities`);
  assert.deepEqual(entities.entities, [{ entityType: 'note', entityId: 'a', data: { id: 'op-1' } }]);

  await sync.close();
  assert.equal((await client.closed).code, 1001, 'its own sockets are closed as when it shuts down alone');
  assert.deepEqual(await text(`${base}/api/stats`), { status: 200, body: 'app /api/stats' }, 'once closed, it leaves every request to the app');
  appSocket.send('still there');
  assert.equal(String((await once(appSocket, 'message'))[0]), 'echo still there', "the app's WebSocket stays open");
  assert.equal(app.listenerCount('upgrade'), 1, "once closed, it takes no upgrade: only the app's listener is left");
});

test('attached with authenticate, its path refuses a sync without a valid token with 4001 and its API asks for one (401), as standalone; origins and host names are checked, the app\'s own requests are not', BOUNDED, async (t) => {
  let sync: SyncServer | undefined;
  const app = appServer(() => sync);
  sync = await attach(t, app, { ...scopedOptions, allowedOrigins: ['https://app.example'] });
  const port = await listen(t, app);
  const url = `ws://127.0.0.1:${port}/api/sync`;
  const base = `http://127.0.0.1:${port}`;

  const refused = {
    'no token': undefined,
    'a wrong token': 'not-a-jwt',
    'a JWT signed with another secret': await tokenFor('alice', ['*'], { secret: 'another secret that is long enough!!' }),
  };
  for (const [what, token] of Object.entries(refused)) {
    const intruder = await TestClient.open(url, t);
    intruder.send({ type: 'sync', clientId: 'mallory', lastLSN: '0/0', ...(token === undefined ? {} : { token }) });
    intruder.send(note('sneaky', 'x', { text: 'planted' }));
    assert.deepEqual(await intruder.closed, { code: 4001, reason: 'unauthorized' }, what);
  }
  assert.equal((await sync.stats()).records, 0, 'nothing was stored');

  const alice = await tokenFor('alice', ['shared', 'alice']);
  const bob = await tokenFor('bob', ['shared', 'bob']);
  // syncedAs dials the sync server's port: attached, the app's once it listens.
  const { client: bobClient } = await syncedAs(t, sync, bob);
  bobClient.send(note('b-1', 'b1', { scope: 'bob' }));
  assert.equal((await answerTo(bobClient, 'b-1')).answer.type, 'operation_complete');
  const { client, frames } = await syncedAs(t, sync, alice);
  assert.deepEqual(seen(frames), [], "alice's catch-up leaves out bob's note");
  client.send(note('a-1', 'a1', { text: 'hello' }));
  assert.equal((await answerTo(client, 'a-1')).answer.type, 'operation_complete');

  assert.equal((await text(`${base}/api/entities`)).status, 401);
  const entities = await getJson(`${base}/api/entities`, alice);
  assert.deepEqual(entities.entities, [{ entityType: 'note', entityId: 'a1', data: { text: 'hello' } }], 'the mounted API answers the identity, within its scopes');
  assert.deepEqual(await text(`${base}/hello`), { status: 200, body: 'app /hello' }, "the app's own requests need no token");

  assert.equal(await refusedUpgrade(url, { Origin: 'https://evil.example' }), 403, 'a page of another origin gets no socket');
  // The app listens on 127.0.0.1: only the loopback names, as for a standalone server bound there.
  assert.equal(await refusedUpgrade(url, { Host: `evil.example:${port}` }), 403, 'nor a page on a name rebound to 127.0.0.1');
  assert.equal(await statusOf(`${base}/api/stats`, { Host: `evil.example:${port}` }), 403);
  assert.equal(await statusOf(`${base}/api/stats`, { Host: `localhost:${port}` }), 401);
  assert.equal(await statusOf(`${base}/hello`, { Host: `evil.example:${port}` }), 200, "the app's own requests are the app's to check");
});

test('attached as the only upgrade listener, it answers 404 to an upgrade for another path instead of leaving it hanging', BOUNDED, async (t) => {
  const app = createServer((_request, response) => response.end('app'));
  await attach(t, app);
  const port = await listen(t, app);
  assert.equal(await refusedUpgrade(`ws://127.0.0.1:${port}/elsewhere`), 404);
  const client = await TestClient.open(`ws://127.0.0.1:${port}/api/sync`, t);
  assert.equal((await client.sync('0/0')).at(-1)?.type, 'sync_complete');
});

test("refuses options that are the app server's to decide, and a path that is not one, opening nothing", BOUNDED, async (t) => {
  const app = createServer();
  const dataDir = await tempDir(t);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ server: app, port: 8080 }, /^Error: port cannot be set with server/],
    [{ server: app, host: '0.0.0.0', staticDir: '.' }, /^Error: host, staticDir cannot be set with server/],
    [{ server: app, maxConnections: 5, headersTimeout: 1, requestTimeout: 1 }, /^Error: maxConnections, headersTimeout, requestTimeout cannot be set/],
    [{ server: app, path: 'api/sync' }, /^Error: path must start with \//],
    [{ path: '/api/sync?x=1' }, /^Error: path must start with \//],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(createSyncServer({ dataDir, ...options }), (error: unknown) => message.test(String(error)), JSON.stringify(Object.keys(options)));
  }
  assert.equal(app.listenerCount('upgrade'), 0, 'nothing was attached');
  // Nor was the store opened: the data directory is free.
  const { store } = await FileSyncStore.open(dataDir);
  await store.close();
});

test('with Express 5: handleRequest is middleware beside the app\'s routes and body parser, the WebSocket on the same server', BOUNDED, async (t) => {
  const app = express();
  const server = createServer(app);
  const sync = await attach(t, server);
  app.use((request, response, next) => {
    sync.handleRequest(request, response).then((handled) => {
      if (!handled) next();
    }, next);
  });
  app.use(express.json());
  app.post('/notes', (request, response) => {
    response.json({ received: request.body as unknown });
  });
  const port = await listen(t, server);
  const base = `http://127.0.0.1:${port}`;

  const client = await TestClient.open(`ws://127.0.0.1:${port}/api/sync`, t);
  await client.sync('0/0');
  const posted = await postChanges(base, [update('note', 'n1', { text: 'from HTTP' })]);
  assert.equal(posted.status, 200, JSON.stringify(posted.body));
  const live = await client.next();
  assert.equal(live.type, 'changes');
  assert.equal(live.type === 'changes' && live.lsn, posted.body.lsn, 'a write through the mounted API reaches the WebSocket client');
  assert.deepEqual((await getJson(`${base}/api/entities`)).entities, [{ entityType: 'note', entityId: 'n1', data: { text: 'from HTTP' } }]);

  const note = await fetch(`${base}/notes`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"text":"mine"}' });
  assert.deepEqual(await note.json(), { received: { text: 'mine' } }, "the app's own route and body parser work behind it");
  assert.equal((await text(`${base}/nothing-here`)).status, 404, "what nobody handles is Express's 404");
});

test('standalone, it serves its WebSocket at the path it is given, and nothing at the default one', BOUNDED, async (t) => {
  const sync = await createSyncServer({ port: 0, heartbeatInterval: 0, dataDir: await tempDir(t), path: '/v2/sync' });
  t.after(() => sync.close());
  assert.equal(sync.path, '/v2/sync');
  assert.equal(await refusedUpgrade(`ws://127.0.0.1:${sync.port}/api/sync`), 404);
  const client = await TestClient.open(`ws://127.0.0.1:${sync.port}/v2/sync`, t);
  assert.equal((await client.sync('0/0')).at(-1)?.type, 'sync_complete');
});
