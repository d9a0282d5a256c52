/**
 * A reference server (server/main.ts) in a child process, on the embedded log or on PostgreSQL,
 * that the chaos run kills with SIGKILL and starts again on the same data. It notices when the
 * process ends without being asked to: that is a crash, reported with the end of its stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;

export interface ServerSpec {
  name: string;
  /** `--data-dir DIR` for the embedded log, or `--store URL` for PostgreSQL. */
  storeArgs: string[];
  extraArgs?: string[];
  /** Told at once when the process exits by itself. */
  onCrash?: (text: string) => void;
}

export class ServerProcess {
  readonly spec: ServerSpec;
  port = 0;
  #child: ChildProcess | undefined;
  #stopping = false;
  #stderr = '';
  /** Exits nobody asked for, each with the end of the server's stderr. */
  readonly crashes: string[] = [];

  constructor(spec: ServerSpec) {
    this.spec = spec;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get httpUrl(): string {
    return `http://${HOST}:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://${HOST}:${this.port}/api/sync`;
  }

  #starting: Promise<void> | undefined;

  /** Starts the process on a free port and waits for its `listening` line (once, when called twice). */
  start(): Promise<void> {
    if (this.#child) return Promise.resolve();
    this.#starting ??= this.#start().finally(() => { this.#starting = undefined; });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const args = ['--import', 'tsx', 'server/main.ts', '--port', '0', '--host', HOST, '--exit-on-stdin-end',
      ...this.spec.storeArgs, ...(this.spec.extraArgs ?? [])];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: withoutAuth(process.env) });
    this.#stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString()).slice(-16_000);
    });
    this.#stopping = false;
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => { // a deadline for the first line, not a wait
        child.kill('SIGKILL');
        reject(new Error(`${this.spec.name} did not start within ${START_TIMEOUT_MS} ms: ${this.#stderr}`));
      }, START_TIMEOUT_MS);
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        let event: { event?: unknown; port?: unknown };
        try {
          event = JSON.parse(line) as typeof event;
        } catch {
          return;
        }
        if (event.event === 'listening' && typeof event.port === 'number') {
          clearTimeout(timer);
          resolve(event.port);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${this.spec.name} exited (${code ?? signal}) before listening: ${this.#stderr}`));
      });
    });
    this.#child = child;
    child.once('exit', (code, signal) => {
      if (this.#child === child) this.#child = undefined;
      if (this.#stopping) return;
      const text = `${this.spec.name} exited by itself (${code ?? signal}): ${this.#stderr.trim().split('\n').slice(-40).join(' | ')}`;
      this.crashes.push(text);
      this.spec.onCrash?.(text);
    });
  }

  /** Ends the process with `signal` and waits until it is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#stopping = true;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000); // a grace period, then the kill
    await exited;
    clearTimeout(timer);
    this.#child = undefined;
  }

  async json(path: string): Promise<Record<string, unknown>> {
    const response = await fetch(`${this.httpUrl}${path}`);
    if (!response.ok) throw new Error(`${this.spec.name} ${path}: HTTP ${response.status}`);
    return (await response.json()) as Record<string, unknown>;
  }

  /** The head of the server's log (`GET /api/stats`). */
  async lsn(): Promise<string> {
    const stats = await this.json('/api/stats');
    if (typeof stats.lsn !== 'string') throw new Error(`${this.spec.name}: /api/stats has no lsn`);
    return stats.lsn;
  }

  /** Every entity the server holds, page after page (`GET /api/entities`). */
  async entities(): Promise<{ lsn: string; entities: ServerEntity[] }> {
    const entities: ServerEntity[] = [];
    let after: string | undefined;
    let lsn = '';
    do {
      const query = new URLSearchParams({ limit: '10000' });
      if (after !== undefined) query.set('after', after);
      const page = await this.json(`/api/entities?${query}`);
      if (!Array.isArray(page.entities) || typeof page.lsn !== 'string') throw new Error(`${this.spec.name}: /api/entities answered ${JSON.stringify(page).slice(0, 200)}`);
      lsn ||= page.lsn;
      entities.push(...(page.entities as ServerEntity[]));
      after = typeof page.next === 'string' ? page.next : undefined;
    } while (after !== undefined);
    return { lsn, entities };
  }
}

export interface ServerEntity {
  entityType: string;
  entityId: string;
  data: unknown;
}

function withoutAuth(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy.SYNC_TOKEN;
  delete copy.SYNC_JWT_SECRET;
  delete copy.SYNC_STORE;
  return copy;
}
