import { resolve } from 'node:path';
import { isStoreUrl } from './open-store.ts';
import type { SyncServerOptions } from './sync-server.ts';

export interface CliOptions {
  server: SyncServerOptions & { port: number; host: string; dataDir: string };
  /** Exit (gracefully) when stdin ends: lets a parent process tie the server's life to its own. */
  exitOnStdinEnd: boolean;
  /** When set, every `sync` must carry this token. */
  token?: string;
}

export const USAGE = `Usage: node --import tsx server/main.ts [options]
  --port N               port to listen on (env PORT; default 8080; 0 = any free port)
  --host ADDRESS         address to bind (env HOST; default 127.0.0.1)
  --data-dir DIR         where the embedded change log lives (env DATA_DIR; default ./data)
  --store URL            keep entities, the change log and applied operation ids in PostgreSQL
                         instead (postgres://user:password@host:port/database, env SYNC_STORE);
                         any number of instances may share one database. It needs
                         wal_level=logical and a role allowed to use replication slots
  --static-dir DIR       root of the files served outside /api/: / and /index.html, and files
                         under /dist/, /bench/ and /examples/ (never dotfiles, never the data
                         directory) (env STATIC_DIR; default the repository root)
  --batch-size N         most changes per replay frame (default 1000)
  --max-payload BYTES    largest incoming WebSocket frame (default 1048576)
  --max-buffered BYTES   unsent bytes after which a client is dropped (default 16777216)
  --heartbeat-ms N       protocol ping interval, 0 = off (default 30000)
  --sync-request         send sync_request when a socket opens
  --exit-on-stdin-end    shut down when stdin closes
Environment: SYNC_TOKEN, when set, is the token every sync must carry (else 4001).
If the change log cannot be written (a disk error), the server closes every socket with 1011
and exits with code 1, so that a supervisor restarts it; clients re-send what was not
acknowledged once it is back. If PostgreSQL cannot be reached, the server keeps its clients,
answers operations with operation_error until the database is back, and carries on.`;

const VALUE_FLAGS = new Set([
  'port', 'host', 'data-dir', 'store', 'static-dir', 'batch-size', 'max-payload', 'max-buffered',
  'heartbeat-ms',
]);
const SWITCHES = new Set(['sync-request', 'exit-on-stdin-end']);

/** Reads the command line and environment; returns an error text for anything it cannot use. */
export function parseCliOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  defaultStaticDir: string,
): CliOptions | { error: string } {
  const values = new Map<string, string>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i]!;
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) return { error: `unexpected argument ${JSON.stringify(arg)}` };
    const name = match[1]!;
    if (SWITCHES.has(name) && match[2] === undefined) {
      switches.add(name);
    } else if (VALUE_FLAGS.has(name)) {
      const value = match[2] ?? argv[++i];
      if (value === undefined) return { error: `--${name} needs a value` };
      values.set(name, value);
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
  for (const value of [port, batchSize, maxPayload, maxBufferedBytes, heartbeatInterval]) {
    if (typeof value === 'string') return { error: value };
  }

  const storeUrl = values.get('store') ?? env.SYNC_STORE;
  if (storeUrl !== undefined && storeUrl !== '' && !isStoreUrl(storeUrl)) {
    return { error: '--store must be a postgres:// or postgresql:// URL' };
  }

  const options: CliOptions = {
    server: {
      port: port as number,
      host: values.get('host') ?? env.HOST ?? '127.0.0.1',
      dataDir: resolve(values.get('data-dir') ?? env.DATA_DIR ?? './data'),
      staticDir: resolve(values.get('static-dir') ?? env.STATIC_DIR ?? defaultStaticDir),
      batchSize: batchSize as number,
      maxPayload: maxPayload as number,
      maxBufferedBytes: maxBufferedBytes as number,
      heartbeatInterval: heartbeatInterval as number,
      syncRequestOnConnect: switches.has('sync-request'),
      ...(storeUrl ? { storeUrl } : {}),
    },
    exitOnStdinEnd: switches.has('exit-on-stdin-end'),
  };
  if (env.SYNC_TOKEN) options.token = env.SYNC_TOKEN;
  return options;
}
