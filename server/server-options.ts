import type { Server as HttpServer } from 'node:http';
import type { Authenticate } from './identity.ts';
import type { ScopeOf } from './scopes.ts';
import type { Authorize, OperationHandler } from './write-rules.ts';
import { DEFAULT_LIMITS, type InputLimits } from './limits.ts';
import type { OutboundLimits } from './outbound-limits.ts';
import type { SyncStore } from './sync-store.ts';

export interface SyncServerOptions {
  /**
   * The app's own HTTP server (Node's, Express's `app.listen()`, Fastify's `fastify.server`) to
   * attach to instead of starting one: the sync server takes the WebSocket upgrades for `path`
   * and leaves every other upgrade and request to the app (mount `handleRequest` for the HTTP
   * API). It does not listen or close that server. Not with `port`, `host`, `staticDir`,
   * `maxConnections`, `headersTimeout` or `requestTimeout`, which are the app server's business.
   */
  server?: HttpServer;
  /** The WebSocket endpoint's path. Default `/api/sync`. */
  path?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Where the embedded log lives; required unless `storeUrl` or `store` is given. */
  dataDir?: string;
  /**
   * Embedded log: open a damaged log by cutting it at the first damaged record, keeping every
   * record before it (the rest is moved to `sync.log.damaged-<offset>`). Off by default: a damaged
   * log refuses to open, saying where.
   */
  recoverLog?: boolean;
  /** Told what opening the store found and did: a torn tail cut, damage set aside, a log imported. */
  onStoreNotice?: (message: string) => void;
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
  /** Bytes queued for one client (unsent) after which it is dropped. Default 16 MiB. */
  maxBufferedBytes?: number;
  /** Frames queued for one client (unsent) after which it is dropped. Default 10,000. */
  maxBufferedMessages?: number;
  /** Ms a client may leave frames unread before it is dropped. Default 30,000. */
  stallTimeout?: number;
  /**
   * Bytes that frames waiting to be sent (a broadcast once, however many clients wait for it)
   * and request bodies being read may hold in all; past it the clients holding most are dropped
   * and bodies are refused with 503. Default 256 MiB.
   */
  memoryBudget?: number;
  /**
   * Most open connections, HTTP and WebSocket together (a WebSocket stays an HTTP server connection);
   * more are closed at once. Default 20,000: room for 10,000 clients and their HTTP requests. Each
   * takes a file descriptor, so the process's open-file limit must be higher still.
   */
  maxConnections?: number;
  /** Ms a WebSocket has to send an authorized `sync`; it is closed with 1008 after. Default 10,000. */
  authTimeout?: number;
  /** Ms a client has to send a request's headers (slowloris). Default 10,000. */
  headersTimeout?: number;
  /** Ms a client has to send a whole request, body included. Default 30,000. */
  requestTimeout?: number;
  /** Largest `POST /api/changes` body. Default 4 MiB. */
  maxBodyBytes?: number;
  /** Ms between protocol-level pings; a socket silent for a whole round is dropped. 0 = off. Default 30000. */
  heartbeatInterval?: number;
  /** Send `sync_request` as soon as a socket opens. Default false. */
  syncRequestOnConnect?: boolean;
  /**
   * Who a token belongs to: called for every `sync` (with its `clientId` and the upgrade request)
   * and every HTTP API request (its `Authorization: Bearer` token). Returns `{ id, scopes }` or
   * `null` (4001 "unauthorized", HTTP 401); may be async; a throw refuses too and is logged without
   * the token. Without it anyone may sync, read and write everything (see `allowedOrigins`).
   * `jwtAuthenticator()` and `requireToken()` make one.
   */
  authenticate?: Authenticate;
  /**
   * Names the scope of an entity from its value (`{ entityType, entityId, data }`): a client gets
   * only the changes to entities in its identity's scopes. Synchronous and pure; the store calls it
   * as each write is resolved. A store passed as `store` takes it in its own options instead.
   */
  scopeOf?: ScopeOf;
  /**
   * Whether an identity may make one change (`true` or the reason it may not). Default: only to an
   * entity whose scope before and after the write is one of the identity's scopes.
   */
  authorize?: Authorize;
  /** App-defined operation types: each handler checks its payload and returns the changes to store. */
  operations?: Readonly<Record<string, OperationHandler>>;
  /**
   * Origins of the web pages that may use the HTTP API (CORS) and open the WebSocket (others get
   * 403). Without it: no page of another origin may read the API (no CORS header), except on a
   * server without `authenticate`, which stays open to every origin as before (CORS `*`).
   */
  allowedOrigins?: readonly string[];
  /**
   * Host names (`Host` header, without the port) the server answers to; anything else gets 403
   * (DNS rebinding). `'*'`: any. Default: the loopback names (`localhost`, `127.0.0.1`, `[::1]`)
   * when bound to a loopback address, else any.
   */
  allowedHosts?: readonly string[];
  /**
   * Ms between the rounds that move the resume point of clients that were sent nothing because
   * every new record was outside their scopes (one empty batch each, shared). Default 5000.
   */
  resumeAdvanceInterval?: number;
  /** What one write may hold (ids, types, nesting, size); each over-limit write is refused, naming the limit. */
  limits?: Partial<InputLimits>;
  /** How long compaction keeps deletes and moves out of a scope below its horizon (ms); default 30 days. */
  tombstoneRetentionMs?: number;
  /**
   * Compacts the store by itself once this many changes were appended since the last compaction
   * (counted by this server); off (0) by default. See `SyncServer.compact`.
   */
  compactEvery?: number;
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

/** The options with every default filled in. */
export interface ResolvedOptions {
  batchSize: number;
  maxPayload: number;
  maxBodyBytes: number;
  heartbeatInterval: number;
  maxConnections: number;
  authTimeout: number;
  headersTimeout: number;
  requestTimeout: number;
  outbound: OutboundLimits;
  limits: InputLimits;
  now: () => number;
  resumeAdvanceInterval: number;
  compactEvery: number;
}

const MiB = 1024 * 1024;

export function resolveOptions(options: SyncServerOptions): ResolvedOptions {
  return {
    batchSize: options.batchSize ?? 1000,
    maxPayload: options.maxPayload ?? MiB,
    maxBodyBytes: options.maxBodyBytes ?? 4 * MiB,
    heartbeatInterval: options.heartbeatInterval ?? 30_000,
    maxConnections: options.maxConnections ?? 20_000,
    authTimeout: options.authTimeout ?? 10_000,
    // Node refuses a headers timeout longer than the whole request's.
    headersTimeout: Math.min(options.headersTimeout ?? 10_000, options.requestTimeout ?? 30_000),
    requestTimeout: options.requestTimeout ?? 30_000,
    outbound: {
      maxBufferedBytes: options.maxBufferedBytes ?? 16 * MiB,
      maxBufferedMessages: options.maxBufferedMessages ?? 10_000,
      stallTimeout: options.stallTimeout ?? 30_000,
      memoryBudget: options.memoryBudget ?? 256 * MiB,
    },
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    now: options.now ?? Date.now,
    resumeAdvanceInterval: options.resumeAdvanceInterval ?? 5000,
    compactEvery: options.compactEvery ?? 0,
  };
}
