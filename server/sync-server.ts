import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ServerStats } from '../src/protocol/http.ts';
import { CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON, SyncConnection } from './connection.ts';
import { startHeartbeat } from './heartbeat.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { formatLSN, parseLSN, type LSN } from '../src/protocol/lsn.ts';
import { handleApi, isApiPath } from './http-api.ts';
import { hostAllowed, hostPolicy, originAllowed, type AccessPolicy } from './http-access.ts';
import { SnapshotGate } from './http-entities.ts';
import type { Identity } from './identity.ts';
import { openStore } from './open-store.ts';
import type { WriteRules } from './operation-writer.ts';
import { MemoryBudget, SharedFrame } from './outbound.ts';
import { resolveOptions, type SyncServerOptions } from './server-options.ts';
import { serveStatic } from './static-files.ts';
import { Subscribers } from './subscribers.ts';
import type { CompactionReport, StoredRecord, SyncStore } from './sync-store.ts';
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
   * Sends `reset` to every connection whose identity `filter` picks (after the app changed
   * someone's scopes, or restored a backup): each client discards its data and syncs again from
   * 0/0, under what its identity may see then. `reason` goes to the clients. Returns how many.
   */
  reset(filter: (identity: Identity) => boolean, reason?: string): number;
  /**
   * Compacts the store up to `horizon` (default: its head): each entity keeps its latest change
   * there, deletes and moves out of a scope stay for the store's tombstone retention. Clients
   * whose resume point is below a dropped delete get `reset` on their next catch-up.
   */
  compact(options?: { horizon?: LSN }): Promise<CompactionReport>;
  /**
   * Stops accepting, lets every append under way become durable and be answered, closes the
   * sockets with 1001 and closes the store. Idempotent.
   */
  close(): Promise<void>;
}

const CLOSE_GOING_AWAY = 1001;
/** Connections whose resume point one turn of the event loop moves. */
const ADVANCE_SLICE = 256;
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
  const subscribers = new Subscribers<SyncConnection>();
  const rules: WriteRules = {
    store,
    limits: settings.limits,
    now: settings.now,
    ...(options.operations === undefined ? {} : { operations: options.operations }),
    ...(options.authorize === undefined ? {} : { authorize: options.authorize }),
  };
  const access: AccessPolicy = {
    open: options.authenticate === undefined,
    ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: new Set(options.allowedOrigins) }),
  };
  // The Host names answered: allowedHosts, else the loopback names when bound to loopback;
  // attached, wherever the app's server listens, known once it does.
  const bindHosts = (bound: string) => {
    const hosts = hostPolicy(options.allowedHosts, bound);
    if (hosts) access.allowedHosts = hosts;
    else delete access.allowedHosts;
  };
  bindHosts(attachedTo ? (addressOf(attachedTo)?.address ?? '') : (options.host ?? '127.0.0.1'));
  const onAppListening = () => bindHosts(addressOf(http)?.address ?? '');
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
  } else {
    http.on('listening', onAppListening);
  }
  const api = {
    store,
    rules,
    access,
    authenticate: options.authenticate,
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
  const refuseHost = (response: ServerResponse) => {
    response.writeHead(403, { 'Content-Type': 'text/plain' }).end('this server does not answer to that host name');
  };
  async function handleRequest(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
    if (stopped) return false;
    try {
      if (!hostAllowed(request, access)) {
        if (!isApiPath(request.url)) return false;
        refuseHost(response);
        return true;
      }
      return await handleApi(request, response, api);
    } catch {
      if (!response.headersSent) response.writeHead(500).end();
      else response.destroy();
      return true;
    }
  }
  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (!hostAllowed(request, access)) {
      refuseHost(response);
      return;
    }
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

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: settings.maxPayload,
    // A page of another origin, or a name the server does not answer to (DNS rebinding), never gets a socket.
    verifyClient: ({ req }: { req: IncomingMessage }, answer: (allowed: boolean, code?: number, reason?: string) => void) => {
      if (hostAllowed(req, access) && originAllowed(req, access)) answer(true);
      else answer(false, 403, 'Forbidden');
    },
  });
  const stopRouting = () => {
    stopUpgrades();
    http.off('listening', onAppListening);
  };
  const stopUpgrades = routeUpgrades(http, path, wss);
  const stopHeartbeat = settings.heartbeatInterval > 0 ? startHeartbeat(wss, settings.heartbeatInterval) : () => {};

  wss.on('connection', (socket, request) => {
    if (closing) {
      socket.close(CLOSE_GOING_AWAY, 'server shutting down');
      return;
    }
    if (storeFailure) {
      socket.close(CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON);
      return;
    }
    const connection = new SyncConnection(socket, {
      rules,
      request,
      subscribers,
      batchSize: settings.batchSize,
      queue: budget.queueFor(socket, request.socket),
      authTimeout: settings.authTimeout,
      ...(options.authenticate === undefined ? {} : { authenticate: options.authenticate }),
      onOperationFrame: () => {
        operationFramesReceived += 1;
      },
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

  // A record's frame is the same for every live client that sees the same of it: built once, held once.
  const compact = async (horizon?: LSN): Promise<CompactionReport> => {
    const position = horizon === undefined ? undefined : parseLSN(horizon);
    if (horizon !== undefined && position === undefined) throw new TypeError(`compact: ${JSON.stringify(horizon)} is not an LSN`);
    return store.compact({ ...(position === undefined ? {} : { horizon: position }), now: settings.now() });
  };
  // The automatic policy: a compaction once `compactEvery` changes were appended since the last one.
  let appendedSince = 0;
  let autoCompacting = false;
  const countForCompaction = (record: StoredRecord) => {
    if (settings.compactEvery <= 0) return;
    appendedSince += record.changes.length;
    if (autoCompacting || closing || appendedSince < settings.compactEvery) return;
    autoCompacting = true;
    appendedSince = 0;
    compact().catch((error: unknown) => {
      process.emitWarning(`automatic compaction failed: ${errorMessage(error)}`);
    }).finally(() => {
      autoCompacting = false;
    });
  };
  const unsubscribe = store.subscribe((record: StoredRecord) => {
    subscribers.publish(record);
    countForCompaction(record);
  });
  // Clients that were offered nothing (every new record was outside their scopes) get one shared
  // empty batch at the head now and then, so that they never replay what they may not see. A few
  // hundred at a time, so that live records are not held up behind thousands of them.
  let sweeping = false;
  const advancing = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    const head = store.headPosition;
    let frame: SharedFrame | undefined;
    const build = () => (frame ??= new SharedFrame(JSON.stringify({ type: 'changes', changes: [], lsn: formatLSN(head) })));
    const behind = [...subscribers.scoped()];
    const sweep = (from: number) => {
      for (const connection of behind.slice(from, from + ADVANCE_SLICE)) connection.advanceTo(head, build);
      if (from + ADVANCE_SLICE < behind.length && !closing) setImmediate(sweep, from + ADVANCE_SLICE);
      else sweeping = false;
    };
    sweep(0);
  }, settings.resumeAdvanceInterval);
  advancing.unref();

  if (!attachedTo) {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
        http.off('error', reject);
        resolve();
      });
    }).catch(async (error: unknown) => {
      stopRouting();
      clearInterval(advancing);
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
    clearInterval(advancing);
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
    reset: (filter, reason = 'the server reset what this client may see') => {
      let count = 0;
      for (const connection of connections.values()) {
        const identity = connection.identity;
        if (identity !== undefined && filter(identity) && connection.reset(reason)) count += 1;
      }
      return count;
    },
    compact: (compactOptions = {}) => compact(compactOptions.horizon),
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
