import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  CLOSE_STORE_UNAVAILABLE,
  STORE_UNAVAILABLE_REASON,
  SyncConnection,
  type Authenticate,
} from './connection.ts';
import { startHeartbeat } from './heartbeat.ts';
import { handleApi } from './http-api.ts';
import { DEFAULT_LIMITS, type InputLimits } from './limits.ts';
import { serveStatic } from './static-files.ts';
import { openStore } from './open-store.ts';
import type { StoredRecord, SyncStore } from './sync-store.ts';

export const SYNC_PATH = '/api/sync';

export interface SyncServerOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Where the embedded log lives; required unless `storeUrl` or `store` is given. */
  dataDir?: string;
  /** A `postgres://` URL: keep the state in that database (shared with other instances) instead. */
  storeUrl?: string;
  /** A store to use instead of opening one. It is flushed, not closed. */
  store?: SyncStore;
  /**
   * Root of the static files: `/`, `/index.html` and files under `/dist/`, `/bench/` and
   * `/examples/` (never dotfiles, never `dataDir`); none when absent.
   */
  staticDir?: string;
  /** Largest incoming WebSocket frame; a bigger one closes the socket with 1009. Default 1 MiB. */
  maxPayload?: number;
  /** Most changes in one replay frame. Default 1000. */
  batchSize?: number;
  /** Unsent bytes after which a client is terminated. Default 16 MiB. */
  maxBufferedBytes?: number;
  /** Largest `POST /api/changes` body. Default 16 MiB. */
  maxBodyBytes?: number;
  /** Ms between protocol-level pings; a socket silent for a whole round is dropped. 0 = off. Default 30000. */
  heartbeatInterval?: number;
  /** Send `sync_request` as soon as a socket opens. Default false. */
  syncRequestOnConnect?: boolean;
  /** Called for every `sync`; false closes the socket with 4001 "unauthorized". */
  authenticate?: Authenticate;
  /** What one write may hold (ids, types, nesting, size); each over-limit write is refused, naming the limit. */
  limits?: Partial<InputLimits>;
  /** Clock for change timestamps. Default `Date.now`. */
  now?: () => number;
  /**
   * Called once when the store fails for good (a disk error). By then every socket has been
   * closed with 1011 "store unavailable", and from then on new sockets are closed the same way
   * and `POST /api/changes` answers 503, until the process reopens the store (restarts).
   */
  onStoreFailure?: (error: Error) => void;
  /**
   * Called when the store becomes temporarily unavailable (with why) and when it is back (with
   * undefined). Meanwhile the clients stay connected and operations get `operation_error`.
   */
  onStoreAvailability?: (unavailable: Error | undefined) => void;
}

export interface ServerStats {
  lsn: string;
  records: number;
  changes: number;
  entities: number;
  operationsApplied: number;
  operationFramesReceived: number;
  clients: number;
}

export interface SyncServer {
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  readonly store: SyncStore;
  stats(): Promise<ServerStats>;
  /**
   * Stops accepting, lets every append under way become durable and be answered, closes the
   * sockets with 1001 and closes the store. Idempotent.
   */
  close(): Promise<void>;
}

const CLOSE_GOING_AWAY = 1001;
const SOCKET_CLOSE_GRACE_MS = 1000;

/** Opens the store and starts an HTTP + WebSocket sync server; resolves once it is listening. */
export async function createSyncServer(options: SyncServerOptions): Promise<SyncServer> {
  const ownsStore = options.store === undefined;
  const store = options.store ?? (await openStore(options));
  const now = options.now ?? Date.now;
  const limits: InputLimits = { ...DEFAULT_LIMITS, ...options.limits };
  // The data is never served, even when the data directory lies inside a served folder.
  const hiddenDirs = options.dataDir === undefined ? [] : [resolvePath(options.dataDir)];
  const connections = new Map<WebSocket, SyncConnection>();
  let operationFramesReceived = 0;
  let closing = false;
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

  const counters = () => ({ operationFramesReceived, clients: connections.size });
  const stats = async (): Promise<ServerStats> => ({ ...(await store.stats()), ...counters() });

  const http = createServer((request, response) => {
    void route(request, response);
  });
  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const context = {
        store,
        maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024,
        closing: () => closing,
        storeFailure: () => storeFailure,
        limits,
        counters,
        now,
      };
      if (await handleApi(request, response, context)) return;
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
  http.on('clientError', (_error, socket) => socket.destroy());

  const wss = new WebSocketServer({
    server: http,
    path: SYNC_PATH,
    maxPayload: options.maxPayload ?? 1024 * 1024,
  });
  const stopHeartbeat =
    (options.heartbeatInterval ?? 30_000) > 0
      ? startHeartbeat(wss, options.heartbeatInterval ?? 30_000)
      : () => {};

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
      batchSize: options.batchSize ?? 1000,
      maxBufferedBytes: options.maxBufferedBytes ?? 16 * 1024 * 1024,
      authenticate: options.authenticate,
      limits,
      onOperationFrame: () => {
        operationFramesReceived += 1;
      },
      now,
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

  // A record's frame is the same for every live client: serialize it once.
  const unsubscribe = store.subscribe((record: StoredRecord) => {
    let frame: string | undefined;
    const serialize = () =>
      (frame ??= JSON.stringify({ type: 'changes', changes: record.changes, lsn: record.lsn }));
    for (const connection of connections.values()) connection.deliver(record, serialize);
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  }).catch(async (error: unknown) => {
    stopHeartbeat();
    unsubscribe();
    stopWatchingStore();
    if (ownsStore) await store.close();
    throw error;
  });
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  async function shutdown(): Promise<void> {
    closing = true;
    stopHeartbeat();
    const stoppedListening = new Promise<void>((resolve) => http.close(() => resolve()));
    await store.flush();
    // Let the answers to the appends that just became durable go out before the sockets close.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const sockets = [...connections.keys()];
    for (const socket of sockets) socket.close(CLOSE_GOING_AWAY, 'server shutting down');
    await Promise.all(sockets.map((socket) => closedWithin(socket, SOCKET_CLOSE_GRACE_MS)));
    unsubscribe();
    stopWatchingStore();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    http.closeAllConnections();
    await stoppedListening;
    if (ownsStore) await store.close();
    else await store.flush();
  }

  return {
    port: address.port,
    url: `http://${host}:${address.port}`,
    store,
    stats,
    close: () => (closed ??= shutdown()),
  };
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
