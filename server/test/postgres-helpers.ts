import { connect, createServer, type Socket } from 'node:net';
import pg from 'pg';
import { WebSocket } from 'ws';
import { parseChanges, type Change } from '../../src/protocol/change.ts';
import { compareLSN } from '../../src/protocol/lsn.ts';
import { parseServerFrame } from '../../src/protocol/wire.ts';
import { NAMES } from '../postgres-schema.ts';
import { createSyncServer, type SyncServer, type SyncServerOptions } from '../sync-server.ts';

/** Starts a server instance on the database at `storeUrl`; it is closed when the test ends. */
export async function startInstance(
  t: { after(fn: () => Promise<void>): void },
  storeUrl: string,
  options: SyncServerOptions = {},
): Promise<SyncServer> {
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, storeUrl, ...options });
  t.after(() => server.close());
  return server;
}

export function upsert(id: string, entityId: string, data: unknown) {
  return { type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'item', entityId, data } } };
}

export function remove(id: string, entityId: string) {
  return { type: 'operation', operation: { id, type: 'delete', payload: { entityType: 'item', entityId } } };
}

/** One change as a comparable line. */
export function describeChange(change: Change): string {
  return `${change.type} ${change.entityType}/${change.entityId} ${change.type === 'update' ? JSON.stringify(change.data) : ''}`;
}

/**
 * What the database itself holds: the change log's head, its record LSNs, every change in log
 * order (described), and the entities.
 */
export async function databaseState(url: string): Promise<{ head: string; lsns: string[]; changes: string[]; entities: Map<string, unknown> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const log = await client.query<{ lsn: string; changes: unknown }>('SELECT lsn::text AS lsn, changes FROM sync_change_log ORDER BY sync_change_log.lsn');
    const rows = await client.query<{ entity_type: string; entity_id: string; data: unknown }>('SELECT entity_type, entity_id, data FROM sync_entities');
    return {
      head: log.rows.at(-1)?.lsn ?? '0/0',
      lsns: log.rows.map((row) => row.lsn),
      changes: log.rows.flatMap((row) => parseChanges(Array.isArray(row.changes) ? row.changes : []).changes.map(describeChange)),
      entities: new Map(rows.rows.map((row) => [`${row.entity_type}/${row.entity_id}`, row.data])),
    };
  } finally {
    await client.end();
  }
}

/** The pid of the server process that holds the stamper lock, if any does. */
export async function stamperPid(url: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ name: string }>(
      `SELECT a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2`,
      [Number(NAMES.stamperLock >> 32n), Number(NAMES.stamperLock & 0xffff_ffffn)],
    );
    const match = /^sync-connection (\d+)$/.exec(result.rows[0]?.name ?? '');
    return match ? Number(match[1]) : undefined;
  } finally {
    await client.end();
  }
}

/**
 * A protocol client that behaves like the real one where it matters here: it applies every
 * `changes` frame whose LSN is above its own to its entity map and moves its LSN, skips one that
 * is not (a replay), and records every frame it got, so a test can compare it with the database.
 */
export class ModelClient {
  readonly socket: WebSocket;
  readonly entities = new Map<string, unknown>();
  /** LSNs of the frames applied, in arrival order (a catch-up frame may hold several records). */
  readonly applied: string[] = [];
  /** Every change applied, in order, described. */
  readonly changes: string[] = [];
  /** Frames that arrived with an LSN not above the client's: never expected from a correct server. */
  readonly repeats: string[] = [];
  readonly acks = new Map<string, string | undefined>();
  readonly operationErrors = new Map<string, string>();
  /** Ids whose operation_error said `retryable` (send it again later). */
  readonly retryable = new Set<string>();
  readonly otherFrames: string[] = [];
  /** `pong` answers received. */
  pongs = 0;
  lsn: string;
  #synced = false;
  #wake: (() => void) | undefined;
  closed = false;

  private constructor(socket: WebSocket, lsn: string) {
    this.socket = socket;
    this.lsn = lsn;
    socket.on('message', (data) => {
      const parsed = parseServerFrame(data.toString());
      if (!parsed.ok) {
        this.otherFrames.push(`invalid: ${parsed.error}`);
      } else {
        const frame = parsed.message;
        switch (frame.type) {
          case 'changes':
            if (compareLSN(frame.lsn, this.lsn) <= 0) {
              this.repeats.push(frame.lsn);
            } else {
              for (const change of frame.changes) {
                this.changes.push(describeChange(change));
                const key = `${change.entityType}/${change.entityId}`;
                if (change.type === 'delete') this.entities.delete(key);
                else this.entities.set(key, change.data);
              }
              this.lsn = frame.lsn;
              this.applied.push(frame.lsn);
            }
            break;
          case 'operation_complete':
            this.acks.set(frame.id, frame.lsn);
            break;
          case 'operation_error':
            this.operationErrors.set(frame.id, frame.message);
            if (frame.retryable === true) this.retryable.add(frame.id);
            break;
          case 'sync_complete':
            this.#synced = true;
            break;
          case 'pong':
            this.pongs += 1;
            break;
          case 'sync_start':
            break;
          default:
            this.otherFrames.push(JSON.stringify(frame));
        }
      }
      this.#wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  /** Connects to `serverUrl`'s sync endpoint, syncs from `lastLSN` and waits for `sync_complete`. */
  static async open(
    t: { after(fn: () => void): void },
    server: { port: number },
    lastLSN = '0/0',
    state?: { entities: Map<string, unknown> },
  ): Promise<ModelClient> {
    const socket = new WebSocket(`ws://127.0.0.1:${server.port}/api/sync`);
    t.after(() => socket.terminate());
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const client = new ModelClient(socket, lastLSN);
    for (const [key, value] of state?.entities ?? []) client.entities.set(key, value);
    socket.send(JSON.stringify({ type: 'sync', clientId: 'model', lastLSN }));
    await client.until(() => client.#synced, 10_000, 'sync_complete');
    return client;
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** Resolves once `check()` holds, re-checking on every frame; fails after `ms`. */
  async until(check: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what} (client at ${this.lsn}, ${this.applied.length} frames)`);
      if (this.closed) throw new Error(`socket closed while waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Waits until the client's LSN is at least `lsn`. */
  reach(lsn: string, ms = 10_000): Promise<void> {
    return this.until(() => compareLSN(this.lsn, lsn) >= 0, ms, `LSN ${lsn}`);
  }
}

/**
 * A TCP proxy in front of the cluster that can play a network partition: `partition()` silently
 * drops everything on the connections it carries (no FIN, no RST, as when a host loses power) and
 * holds new connections unanswered; `heal()` lets the held and new ones through, while the
 * connections cut by the partition stay dead, as their state would be on a rebooted host.
 */
export async function startPartitionProxy(
  t: { after(fn: () => Promise<void>): void },
  /** The server's unix socket path (or a TCP port on 127.0.0.1). */
  target: string | number,
): Promise<{
  port: number;
  url(directUrl: string): string;
  partition(): void;
  heal(): void;
  /** Connections held unanswered by the partition right now. */
  held(): number;
  /** Connections let through by `heal()` that are still open. */
  healedOpen(): number;
}> {
  const cut = new Set<Socket>();
  const held: (() => void)[] = [];
  const healed = new Set<Socket>();
  let partitioned = false;
  const sockets = new Set<Socket>();
  const server = createServer((downstream) => {
    sockets.add(downstream);
    downstream.on('error', () => {});
    downstream.on('close', () => sockets.delete(downstream));
    const pending: Buffer[] = [];
    const buffer = (chunk: Buffer) => pending.push(chunk);
    downstream.on('data', buffer);
    const link = () => {
      const upstream = typeof target === 'string' ? connect(target) : connect(target, '127.0.0.1');
      sockets.add(upstream);
      upstream.on('error', () => downstream.destroy());
      downstream.on('error', () => upstream.destroy());
      upstream.on('close', () => {
        sockets.delete(upstream);
        if (!cut.has(upstream)) downstream.destroy();
      });
      downstream.on('close', () => {
        if (!cut.has(downstream)) upstream.destroy();
      });
      downstream.off('data', buffer);
      for (const chunk of pending) upstream.write(chunk);
      downstream.on('data', (chunk: Buffer) => {
        if (!cut.has(downstream)) upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (!cut.has(upstream)) downstream.write(chunk);
      });
      pairs.push([downstream, upstream]);
    };
    if (partitioned) {
      held.push(() => {
        healed.add(downstream);
        downstream.once('close', () => healed.delete(downstream));
        link();
      });
    } else {
      link();
    }
  });
  const pairs: [Socket, Socket][] = [];
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  t.after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port,
    url: (directUrl) => {
      const parsed = new URL(directUrl);
      parsed.host = `127.0.0.1:${port}`;
      parsed.searchParams.delete('host');
      return parsed.toString();
    },
    partition() {
      partitioned = true;
      for (const [down, up] of pairs) {
        cut.add(down);
        cut.add(up);
      }
    },
    heal() {
      partitioned = false;
      for (const link of held.splice(0)) link();
    },
    held: () => held.length,
    healedOpen: () => healed.size,
  };
}
