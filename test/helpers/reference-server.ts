/**
 * The reference sync server in browser tests: a child process the web-test-runner plugin
 * (test/plugins/reference-server.mjs) runs, driven with its commands, and read through its HTTP API.
 */
import { executeServerCommand } from '@web/test-runner-commands';
import type { Change } from '../../src/protocol/change.ts';
import type { ChangesAccepted, EntitiesAnswer, ServerStats } from '../../src/protocol/http.ts';
import type { LSN } from '../../src/protocol/lsn.ts';

/** What `server-start` takes: the server's CLI flags, and the token every `sync` must carry. */
export interface ServerOptions {
  batchSize?: number;
  maxPayload?: number;
  maxBuffered?: number;
  maxDepth?: number;
  heartbeatMs?: number;
  /** Compact the log once this many changes were appended (--compact-every). */
  compactEvery?: number;
  /** How long compaction keeps deletes, in hours (--tombstone-retention-hours). */
  tombstoneRetentionHours?: number;
  syncRequest?: boolean;
  token?: string;
  /** Clients authenticate with JWTs signed with this secret (SYNC_JWT_SECRET). */
  jwtSecret?: string;
  /** The demo: users alice and bob, notes shared or private to their owner (--demo). */
  demo?: boolean;
}

/** How the plugin answers `server-start`, `server-restart` and `server-start-again`. */
interface Started {
  id: string;
  port: number;
  wsUrl: string;
  httpUrl: string;
}

export type StopSignal = 'SIGTERM' | 'SIGKILL';

/** One reference server: started, stopped and started again on the same port and data. */
export class ReferenceServer {
  #started: Started | undefined;
  /** The token the HTTP calls carry, when the server requires one. */
  #token: string | undefined;

  get id(): string {
    return this.#info().id;
  }

  get port(): number {
    return this.#info().port;
  }

  /** `ws://127.0.0.1:<port>/api/sync` */
  get wsUrl(): string {
    return this.#info().wsUrl;
  }

  /** `http://127.0.0.1:<port>` */
  get httpUrl(): string {
    return this.#info().httpUrl;
  }

  /** Starts a new server (a free port, no data). One this handle ran before is removed first. */
  async start(options: ServerOptions = {}): Promise<this> {
    await this.remove();
    this.#token = options.token;
    // A server that authenticates answers only the pages of the origins it is told of: this one.
    const origin = options.token !== undefined || options.jwtSecret !== undefined ? { origin: location.origin } : {};
    this.#started = await executeServerCommand<Started, ServerOptions & { origin?: string }>('server-start', { ...options, ...origin });
    return this;
  }

  /** Stops the process with `signal` (SIGKILL: no close frames, no flush); its port and data stay for {@link startAgain}. */
  async stop(signal: StopSignal = 'SIGTERM'): Promise<void> {
    await executeServerCommand('server-stop', { id: this.id, signal });
  }

  /** Starts the stopped server again on the same port and data. */
  async startAgain(): Promise<void> {
    this.#started = await executeServerCommand<Started, { id: string }>('server-start-again', { id: this.id });
  }

  /** Stops the server and starts it again on the same port and data, in one command. */
  async restart(signal: StopSignal = 'SIGTERM'): Promise<void> {
    this.#started = await executeServerCommand<Started, { id: string; signal: StopSignal }>('server-restart', { id: this.id, signal });
  }

  /** Kills the server and deletes its data; the handle can start a new one. */
  async remove(): Promise<void> {
    const started = this.#started;
    this.#started = undefined;
    if (started) await executeServerCommand('server-remove', { id: started.id });
  }

  #authorization(): Record<string, string> {
    return this.#token === undefined ? {} : { Authorization: `Bearer ${this.#token}` };
  }

  /** Appends changes through `POST /api/changes`; resolves with their LSN. */
  async post(changes: Change[]): Promise<LSN> {
    const response = await this.postBody(JSON.stringify({ changes }));
    if (!response.ok) throw new Error(`POST /api/changes: ${response.status} ${await response.text()}`);
    return ((await response.json()) as ChangesAccepted).lsn;
  }

  /** `POST /api/changes` with this body as it is. */
  postBody(body: string): Promise<Response> {
    return fetch(`${this.httpUrl}/api/changes`, { method: 'POST', headers: { 'content-type': 'application/json', ...this.#authorization() }, body });
  }

  /** `GET /api/stats` */
  async stats(): Promise<ServerStats> {
    return (await fetch(`${this.httpUrl}/api/stats`, { headers: this.#authorization() })).json() as Promise<ServerStats>;
  }

  /** `GET /api/entities` */
  /** Every entity the server holds, page after page. */
  async entities(): Promise<EntitiesAnswer> {
    const read = async (after?: string): Promise<EntitiesAnswer> => {
      const query = after === undefined ? '' : `?after=${encodeURIComponent(after)}`;
      return (await fetch(`${this.httpUrl}/api/entities${query}`, { headers: this.#authorization() })).json() as Promise<EntitiesAnswer>;
    };
    const first = await read();
    const entities = [...first.entities];
    for (let next = first.next; next !== undefined;) {
      const page = await read(next);
      entities.push(...page.entities);
      next = page.next;
    }
    return { lsn: first.lsn, entities };
  }

  #info(): Started {
    if (!this.#started) throw new Error('No reference server is running here: give useReferenceServer() options, or start() one');
    return this.#started;
  }
}

/**
 * A reference server for the tests of the enclosing `describe` (or file), removed after each
 * test (after the file with `per: 'file'`) whatever the test did, by hooks this registers.
 * With `options` it starts before each test (before the file); with `null` a test starts it
 * itself with {@link ReferenceServer.start}.
 */
export function useReferenceServer(
  options: ServerOptions | null = {},
  { per = 'test' }: { per?: 'test' | 'file' } = {},
): ReferenceServer {
  const server = new ReferenceServer();
  const [setUp, tearDown] = per === 'file' ? [before, after] : [beforeEach, afterEach];
  if (options) setUp(async () => { await server.start(options); });
  tearDown(async () => { await server.remove(); });
  return server;
}

/** `count` updates of notes `n<from>`, `n<from + 1>`, ... with the text `note <i>`. */
export function notes(count: number, from = 0): Change[] {
  return Array.from({ length: count }, (_, i) => ({
    type: 'update' as const,
    entityType: 'note',
    entityId: `n${from + i}`,
    data: { text: `note ${from + i}` },
  }));
}
