import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ServerStats } from '../src/protocol/http.ts';
import { CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON, SyncConnection } from './connection.ts';
import { startHeartbeat } from './heartbeat.ts';
import { handleApi } from './http-api.ts';
import { SnapshotGate } from './http-entities.ts';
import { openStore } from './open-store.ts';
import { MemoryBudget, SharedFrame } from './outbound.ts';
import { resolveOptions, type SyncServerOptions } from './server-options.ts';
import { serveStatic } from './static-files.ts';
import type { StoredRecord, SyncStore } from './sync-store.ts';
import { isEndpointPath, routeUpgrades } from './upgrade-route.ts';

export type { SyncServerOptions } from './server-options.ts';

export const SYNC_PATH = '/api/sync';

export type { ServerStats };

export interface SyncServer {
  /** The port it listens on; attached to an app's server, that server's port (0 while it does not listen). */
  readonly port: number;
  /** `http://host:port`; attached to an app's server, that server's (empty while it does not listen). */
  readonly url: string;
  /** The WebSocket endpoint's path (`/api/sync` unless set). */
  readonly path: string;
  readonly store: SyncStore;
  stats(): Promise<ServerStats>;
  /**
   * Answers a request for the HTTP API (`/api/stats`, `/api/entities`, `/api/changes`) and
   * resolves true; resolves false without touching the request for any other path, and for every
   * request once `close()` has resolved, so that an app can pass it on (Express: `next()`). Mount
   * it before any body parser: it reads `POST /api/changes` itself.
   */
  handleRequest(request: IncomingMessage, response: ServerResponse): Promise<boolean>;
  /**
   * Stops accepting, lets every append under way become durable and be answered, closes the
   * sockets with 1001 and closes the store. Idempotent.
   */
  close(): Promise<void>;
}

const CLOSE_GOING_AWAY = 1001;
const SOCKET_CLOSE_GRACE_MS = 1000;

/** Options an app's own server decides when the sync server is attached to it. */
const STANDALONE_ONLY = ['port', 'host', 'staticDir', 'maxConnections', 'headersTimeout', 'requestTimeout'] as const;

/**
 * Opens the store and starts an HTTP + WebSocket sync server; resolves once it is listening. With
 * `server`, attaches to that HTTP server instead and resolves once ready.
 */
export async function createSyncServer(options: SyncServerOptions): Promise<SyncServer> {
  const attachedTo = options.server;
  const path = options.path ?? SYNC_PATH;
  if (!isEndpointPath(path)) throw new Error(`path must start with / and hold no query or fragment, got ${JSON.stringify(path)}`);
  if (attachedTo !== undefined) {
    const conflicting = STANDALONE_ONLY.filter((name) => options[name] !== undefined);
    if (conflicting.length > 0) {
      throw new Error(`${conflicting.join(', ')} cannot be set with server: the app's own server decides ${conflicting.length > 1 ? 'them' : 'it'}`);
    }
  }
  const settings = resolveOptions(options);
  const ownsStore = options.store === undefined;
  const store = options.store ?? (await openStore(options));
  // The data is never served, even when the data directory lies inside a served folder.
  const hiddenDirs = options.dataDir === undefined ? [] : [resolvePath(options.dataDir)];
  const connections = new Map<WebSocket, SyncConnection>();
  let operationFramesReceived = 0;
  let clientsDropped = 0;
  let closing = false;
  const budget = new MemoryBudget(settings.outbound, () => {
    clientsDropped += 1;
  });
  budget.start();
  // Once the store has failed nothing can be acknowledged, so no client is kept: closed with 1011,
  // each one reconnects with backoff and re-sends its unacknowledged operations to a server that
  // has reopened the store (a restarted process). A live client that could no longer write would
  // hold its operations in flight without any answer instead.
  let storeFailure: Error | undefined = store.failure;
  const failStore = (error: Error) => {
    if (storeFailure) return;
    storeFailure = error;
    for (const socket of connections.keys()) socket.close(CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON);
    options.onStoreFailure?.(error);
  };
  const stopWatchingFailure = store.onFailure(failStore);
  const stopWatchingAvailability = store.onAvailability((unavailable) => options.onStoreAvailability?.(unavailable));
  const stopWatchingStore = () => {
    stopWatchingFailure();
    stopWatchingAvailability();
  };

  const counters = () => ({ operationFramesReceived, clients: connections.size, clientsDropped, bytesHeld: budget.held });
  const stats = async (): Promise<ServerStats> => ({ ...(await store.stats()), ...counters() });

  const http = attachedTo ?? createServer({
    headersTimeout: settings.headersTimeout,
    requestTimeout: settings.requestTimeout,
    // How often the two timeouts above are checked (Node's default is every 30 s).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, settings.headersTimeout / 4)),
  }, (request, response) => {
    void route(request, response);
  });
  if (!attachedTo) {
    http.maxConnections = settings.maxConnections;
    http.on('clientError', (_error, socket) => socket.destroy());
  }
  const api = {
    store,
    budget,
    maxBodyBytes: settings.maxBodyBytes,
    closing: () => closing,
    storeFailure: () => storeFailure,
    limits: settings.limits,
    snapshots: new SnapshotGate(),
    stallTimeout: settings.outbound.stallTimeout,
    counters,
    now: settings.now,
  };
  // While closing, the API still answers (writes with 503); once closed, it leaves requests alone.
  let stopped = false;
  async function handleRequest(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
    if (stopped) return false;
    try {
      return await handleApi(request, response, api);
    } catch {
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
      return true;
    }
  }
  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (await handleRequest(request, response)) return;
    try {
      if (options.staticDir !== undefined) {
        await serveStatic(request, response, options.staticDir, { hidden: hiddenDirs });
      } else {
        response.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      }
    } catch {
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
    }
  }

  const wss = new WebSocketServer({ noServer: true, maxPayload: settings.maxPayload });
  const stopRouting = routeUpgrades(http, path, wss);
  const stopHeartbeat = settings.heartbeatInterval > 0 ? startHeartbeat(wss, settings.heartbeatInterval) : () => {};

  wss.on('connection', (socket) => {
    if (closing) {
      socket.close(CLOSE_GOING_AWAY, 'server shutting down');
      return;
    }
    if (storeFailure) {
      socket.close(CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON);
      return;
    }
    const connection = new SyncConnection(socket, {
      store,
      batchSize: settings.batchSize,
      queue: budget.queueFor(socket),
      authTimeout: settings.authTimeout,
      authenticate: options.authenticate,
      limits: settings.limits,
      onOperationFrame: () => {
        operationFramesReceived += 1;
      },
      now: settings.now,
    });
    connections.set(socket, connection);
    socket.on('message', (data, isBinary) => {
      if (!closing && !storeFailure) connection.receive(data, isBinary);
    });
    // ws closes the socket itself on a protocol error (1009 for an oversize frame, ...).
    socket.on('error', () => {});
    socket.once('close', () => connections.delete(socket));
    if (options.syncRequestOnConnect) connection.send({ type: 'sync_request' });
  });

  // A record's frame is the same for every live client: built once, held once.
  const unsubscribe = store.subscribe((record: StoredRecord) => {
    let frame: SharedFrame | undefined;
    const build = () => (frame ??= new SharedFrame(JSON.stringify({ type: 'changes', changes: record.changes, lsn: record.lsn })));
    for (const connection of connections.values()) connection.deliver(record, build);
  });

  if (!attachedTo) {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        http.off('error', reject);
        resolve();
      });
    }).catch(async (error: unknown) => {
      stopRouting();
      stopHeartbeat();
      budget.stop();
      unsubscribe();
      stopWatchingStore();
      if (ownsStore) await store.close();
      throw error;
    });
  }

  let closed: Promise<void> | undefined;
  async function shutdown(): Promise<void> {
    closing = true;
    stopRouting();
    stopHeartbeat();
    const stoppedListening = attachedTo ? Promise.resolve() : new Promise<void>((resolve) => http.close(() => resolve()));
    await store.flush();
    // Let the answers to the appends that just became durable go out before the sockets close.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const sockets = [...connections.keys()];
    for (const socket of sockets) socket.close(CLOSE_GOING_AWAY, 'server shutting down');
    await Promise.all(sockets.map((socket) => closedWithin(socket, SOCKET_CLOSE_GRACE_MS)));
    unsubscribe();
    stopWatchingStore();
    budget.stop();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    if (!attachedTo) http.closeAllConnections();
    await stoppedListening;
    if (ownsStore) await store.close();
    else await store.flush();
    stopped = true;
  }

  // Its own server's address is fixed once listening; an app's server may listen later, or again.
  const listening = attachedTo ? undefined : addressOf(http);
  return {
    get port() {
      return (listening ?? addressOf(http))?.port ?? 0;
    },
    get url() {
      const address = listening ?? addressOf(http);
      if (!address) return '';
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return `http://${host}:${address.port}`;
    },
    path,
    store,
    stats,
    handleRequest,
    close: () => (closed ??= shutdown()),
  };
}

/** The address a server listens on, if it listens on a port. */
function addressOf(http: HttpServer): AddressInfo | undefined {
  const address = http.address();
  return address !== null && typeof address === 'object' ? address : undefined;
}

/** Resolves when `socket` has closed, terminating it if the close handshake takes too long. */
function closedWithin(socket: WebSocket, ms: number): Promise<void> {
  if (socket.readyState === socket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.terminate(), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
