import { resolve } from 'node:path';
import { DEFAULT_LIMITS } from './limits.ts';
import { isStoreUrl } from './open-store.ts';
import type { SyncServerOptions } from './server-options.ts';

export interface CliOptions {
  server: SyncServerOptions & { port: number; host: string; dataDir: string };
  /** Exit (gracefully) when stdin ends: lets a parent process tie the server's life to its own. */
  exitOnStdinEnd: boolean;
  /** When set, every `sync` must carry this token. */
  token?: string;
  /** When set, clients authenticate with JWTs signed with this secret (HS256). */
  jwtSecret?: string;
  /** Run as the demo: two users, shared and private notes (see server/demo.ts). */
  demo: boolean;
}

/** The command line's help, for the command `command`; `staticDefault` says what --static-dir defaults to. */
export function usage(command: string, staticDefault: string): string {
  return `Usage: ${command} [options]
  --port N               port to listen on (env PORT; default 8080; 0 = any free port)
  --host ADDRESS         address to bind (env HOST; default 127.0.0.1)
  --data-dir DIR         where the embedded change log lives (env DATA_DIR; default ./data)
  --store URL            keep entities, the change log and applied operation ids in PostgreSQL
                         instead (postgres://user:password@host:port/database, env SYNC_STORE);
                         any number of instances may share one database. It needs
                         wal_level=logical, a role allowed to use replication slots, and the
                         PostgreSQL driver installed beside the server (npm install pg)
  --static-dir DIR       root of the files served outside /api/: / and /index.html, and files
                         under /dist/, /bench/ and /examples/ (never dotfiles, never the data
                         directory) (env STATIC_DIR; default ${staticDefault})
  --batch-size N         most changes per replay frame (default 1000)
  --max-payload BYTES    largest incoming WebSocket frame (default 1048576)
  --max-buffered BYTES   unsent bytes after which a client is dropped (default 16777216)
  --max-buffered-messages N
                         unsent frames after which a client is dropped (default 10000)
  --stall-timeout-ms N   a client that leaves frames unread this long is dropped (default 30000)
  --memory-budget BYTES  what frames waiting to be sent and request bodies may hold in all;
                         past it the clients holding most are dropped (default 268435456)
  --max-connections N    most open connections, HTTP and WebSocket (default 20000)
  --auth-timeout-ms N    a WebSocket without an authorized sync this long is closed (default 10000)
  --max-body BYTES       largest POST /api/changes body (default 4194304)
  --max-depth N          deepest nesting of objects and arrays in a change's data (default 64)
  --headers-timeout-ms N a request's headers must arrive within this (default 10000)
  --request-timeout-ms N a whole request, body included, must arrive within this (default 30000)
  --heartbeat-ms N       protocol ping interval, 0 = off (default 30000)
  --compact-every N      compact the store once N changes were appended since the last
                         compaction: each entity keeps its latest change (default 0 = never)
  --tombstone-retention-hours N
                         how long compaction keeps deletes, so that a client offline for less
                         is never reset (default 720, 30 days)
  --recover-log          open a damaged embedded log by cutting it at the first damaged record,
                         keeping every record before it; the rest is moved to
                         <data-dir>/sync.log.damaged-<offset>. Without it such a log refuses
                         to open (a torn tail from a crash is always cut, and said)
  --allowed-origin ORIGIN
                         a web page origin allowed to use the HTTP API and the WebSocket
                         (repeatable); others get no CORS header and 403 on the WebSocket
  --allowed-host NAME    a host name the server answers to (repeatable; * = any); default: the
                         loopback names when bound to loopback, else any. Others get 403
  --demo                 the demo: users alice and bob, JWTs signed with SYNC_JWT_SECRET or a
                         random development secret, notes shared or private to their owner;
                         prints the secret and the page's address with both users' tokens
                         (without static files to serve: each user's token)
  --sync-request         send sync_request when a socket opens
  --exit-on-stdin-end    shut down when stdin closes
  --help                 print this and exit
Environment: SYNC_TOKEN, when set, is the token every sync must carry (else 4001); set but
empty, the server refuses to start. SYNC_JWT_SECRET (at least 32 bytes), when set, makes clients
authenticate with JWTs signed with it (HS256): the identity is sub, the scopes the scopes claim.
Without either (and without --demo) anyone may read and write everything.
If the change log cannot be written (a disk error), the server closes every socket with 1011
and exits with code 1, so that a supervisor restarts it; clients re-send what was not
acknowledged once it is back. If PostgreSQL cannot be reached, the server keeps its clients,
answers operations with operation_error until the database is back, and carries on.`;
}

const VALUE_FLAGS = new Set([
  'port', 'host', 'data-dir', 'store', 'static-dir', 'batch-size', 'max-payload', 'max-buffered',
  'max-buffered-messages', 'stall-timeout-ms', 'memory-budget', 'max-connections', 'auth-timeout-ms',
  'max-body', 'max-depth', 'headers-timeout-ms', 'request-timeout-ms', 'heartbeat-ms',
  'compact-every', 'tombstone-retention-hours',
]);
/** Flags that may be given more than once, each adding a value. */
const LIST_FLAGS = new Set(['allowed-origin', 'allowed-host']);
const SWITCHES = new Set(['sync-request', 'exit-on-stdin-end', 'recover-log', 'demo']);

/** Reads the command line and environment; returns an error text for anything it cannot use. */
export function parseCliOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  /** Served when --static-dir and STATIC_DIR are absent; without it, no static files. */
  defaultStaticDir?: string,
): CliOptions | { error: string } {
  const values = new Map<string, string>();
  const lists = new Map<string, string[]>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) return { error: `unexpected argument ${JSON.stringify(arg)}` };
    const name = match[1]!;
    if (SWITCHES.has(name) && match[2] === undefined) {
      switches.add(name);
    } else if (VALUE_FLAGS.has(name) || LIST_FLAGS.has(name)) {
      const value = match[2] ?? argv[++i];
      if (value === undefined) return { error: `--${name} needs a value` };
      if (LIST_FLAGS.has(name)) lists.set(name, [...(lists.get(name) ?? []), value]);
      else values.set(name, value);
    } else {
      return { error: `unknown option --${name}` };
    }
  }

  const integer = (name: string, fallback: number, min: number): number | string => {
    const text = values.get(name) ?? (name === 'port' ? env.PORT : undefined);
    if (text === undefined || text === '') return fallback;
    if (!/^\d+$/.test(text)) return `--${name} must be a whole number, got ${JSON.stringify(text)}`;
    const value = Number(text);
    if (value < min || (name === 'port' && value > 65535)) return `--${name} out of range: ${text}`;
    return value;
  };
  const port = integer('port', 8080, 0);
  const batchSize = integer('batch-size', 1000, 1);
  const maxPayload = integer('max-payload', 1024 * 1024, 1);
  const maxBufferedBytes = integer('max-buffered', 16 * 1024 * 1024, 1);
  const heartbeatInterval = integer('heartbeat-ms', 30_000, 0);
  const maxBufferedMessages = integer('max-buffered-messages', 10_000, 1);
  const stallTimeout = integer('stall-timeout-ms', 30_000, 1);
  const memoryBudget = integer('memory-budget', 256 * 1024 * 1024, 1);
  const maxConnections = integer('max-connections', 20_000, 1);
  const authTimeout = integer('auth-timeout-ms', 10_000, 1);
  const maxBodyBytes = integer('max-body', 4 * 1024 * 1024, 1);
  const maxDepth = integer('max-depth', DEFAULT_LIMITS.maxDepth, 1);
  const headersTimeout = integer('headers-timeout-ms', 10_000, 1);
  const requestTimeout = integer('request-timeout-ms', 30_000, 1);
  const compactEvery = integer('compact-every', 0, 0);
  const retentionHours = integer('tombstone-retention-hours', 720, 0);
  const numbers = [compactEvery, retentionHours,
    port, batchSize, maxPayload, maxBufferedBytes, heartbeatInterval, maxBufferedMessages, stallTimeout,
    memoryBudget, maxConnections, authTimeout, maxBodyBytes, maxDepth, headersTimeout, requestTimeout,
  ];
  for (const value of numbers) {
    if (typeof value === 'string') return { error: value };
  }
  if (env.SYNC_TOKEN === '') {
    return { error: 'SYNC_TOKEN is set but empty: that would turn authentication off. Unset it to run without authentication, or give it a value' };
  }

  if (env.SYNC_JWT_SECRET !== undefined && Buffer.byteLength(env.SYNC_JWT_SECRET) < 32) {
    return { error: 'SYNC_JWT_SECRET must have at least 32 bytes (a shorter secret can be guessed)' };
  }
  if (env.SYNC_JWT_SECRET !== undefined && env.SYNC_TOKEN !== undefined) {
    return { error: 'SYNC_TOKEN and SYNC_JWT_SECRET are both set: choose one way for clients to authenticate' };
  }
  if (switches.has('demo') && env.SYNC_TOKEN !== undefined) {
    return { error: '--demo authenticates its users with JWTs; unset SYNC_TOKEN' };
  }
  for (const origin of lists.get('allowed-origin') ?? []) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) return { error: `--allowed-origin must be an origin such as https://app.example.com (scheme, host and port only), got ${JSON.stringify(origin)}` };
  }

  const storeUrl = values.get('store') ?? env.SYNC_STORE;
  if (storeUrl !== undefined && storeUrl !== '' && !isStoreUrl(storeUrl)) {
    return { error: '--store must be a postgres:// or postgresql:// URL' };
  }

  const staticDir = values.get('static-dir') ?? env.STATIC_DIR ?? defaultStaticDir;
  const options: CliOptions = {
    server: {
      port: port as number,
      host: values.get('host') ?? env.HOST ?? '127.0.0.1',
      dataDir: resolve(values.get('data-dir') ?? env.DATA_DIR ?? './data'),
      batchSize: batchSize as number,
      maxPayload: maxPayload as number,
      maxBufferedBytes: maxBufferedBytes as number,
      maxBufferedMessages: maxBufferedMessages as number,
      stallTimeout: stallTimeout as number,
      memoryBudget: memoryBudget as number,
      maxConnections: maxConnections as number,
      authTimeout: authTimeout as number,
      maxBodyBytes: maxBodyBytes as number,
      limits: { maxDepth: maxDepth as number },
      headersTimeout: headersTimeout as number,
      requestTimeout: requestTimeout as number,
      heartbeatInterval: heartbeatInterval as number,
      compactEvery: compactEvery as number,
      tombstoneRetentionMs: (retentionHours as number) * 3_600_000,
      syncRequestOnConnect: switches.has('sync-request'),
      recoverLog: switches.has('recover-log'),
      ...(storeUrl ? { storeUrl } : {}),
      ...(staticDir === undefined ? {} : { staticDir: resolve(staticDir) }),
      ...(lists.has('allowed-origin') ? { allowedOrigins: lists.get('allowed-origin')! } : {}),
      ...(lists.has('allowed-host') ? { allowedHosts: lists.get('allowed-host')! } : {}),
    },
    exitOnStdinEnd: switches.has('exit-on-stdin-end'),
    demo: switches.has('demo'),
  };
  if (env.SYNC_TOKEN !== undefined) options.token = env.SYNC_TOKEN;
  if (env.SYNC_JWT_SECRET !== undefined) options.jwtSecret = env.SYNC_JWT_SECRET;
  return options;
}
