import assert from 'node:assert/strict';
import { spawn, type ChildProcess, type SpawnOptionsWithStdioTuple } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { Change } from '../../src/protocol/change.ts';
import { parseServerFrame, type ServerMessage } from '../../src/protocol/wire.ts';
import type { LogFile, OpenLogFile } from '../append-log.ts';
import { createSyncServer, type SyncServer, type SyncServerOptions } from '../sync-server.ts';

export async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sync-server-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts a server on a free port; it is closed when the test ends. */
export async function startServer(
  t: { after(fn: () => Promise<void>): void },
  options: SyncServerOptions,
): Promise<SyncServer> {
  const server = await createSyncServer({ port: 0, heartbeatInterval: 0, ...options });
  t.after(() => server.close());
  return server;
}

/**
 * Opens the log file for real, but once `fillDisk()` has been called its next write puts half its
 * bytes on disk and fails with ENOSPC, and so does every write after it: what a full disk does.
 */
export function diskThatFills(): { openFile: OpenLogFile; fillDisk(): void } {
  let full = false;
  const openFile: OpenLogFile = async (path) => {
    const file = await open(path, 'r+');
    const faulty: LogFile = {
      read: (buffer, offset, length, position) => file.read(buffer, offset, length, position),
      stat: () => file.stat(),
      truncate: (length) => file.truncate(length),
      datasync: () => file.datasync(),
      close: () => file.close(),
      async write(buffer, offset, length, position) {
        if (!full) return file.write(buffer, offset, length, position);
        const half = Math.floor(length / 2);
        if (half > 0) await file.write(buffer, offset, half, position);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    };
    return faulty;
  };
  return { openFile, fillDisk: () => (full = true) };
}

export function wsUrl(server: { port: number }): string {
  return `ws://127.0.0.1:${server.port}/api/sync`;
}

export function update(entityType: string, entityId: string, data: unknown): Change {
  return { type: 'update', entityType, entityId, data };
}

/** An `operation` frame that upserts the task `entityId`. */
export function upsert(id: string, entityId: string, data: unknown) {
  return { type: 'operation', operation: { id, type: 'upsert', payload: { entityType: 'task', entityId, data } } };
}

/** `frame`, asserted to be of `type`. */
export function only<T extends ServerMessage['type']>(frame: ServerMessage, type: T): Extract<ServerMessage, { type: T }> {
  assert.equal(frame.type, type, `expected ${type}, got ${JSON.stringify(frame)}`);
  return frame as Extract<ServerMessage, { type: T }>;
}

export async function postChanges(baseUrl: string, changes: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/api/changes`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ changes }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

export async function getJson(url: string, token?: string): Promise<Record<string, unknown>> {
  const response = await fetch(url, token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } });
  return (await response.json()) as Record<string, unknown>;
}

/** Every entity (that `token`'s identity may see), following `next` from page to page. */
export async function allEntities(baseUrl: string, limit?: number, token?: string): Promise<{ entityType: string; entityId: string; data: unknown }[]> {
  const entities: { entityType: string; entityId: string; data: unknown }[] = [];
  let after: string | undefined;
  do {
    const query = new URLSearchParams();
    if (limit !== undefined) query.set('limit', String(limit));
    if (after !== undefined) query.set('after', after);
    const page = await getJson(`${baseUrl}/api/entities?${query}`, token);
    entities.push(...(page.entities as typeof entities));
    after = page.next as string | undefined;
  } while (after !== undefined);
  return entities;
}

/** Polls `check` until it returns true, failing after `ms`. */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A `ws` client that checks every server frame with the protocol's own parser and queues it, so a
 * test can read the frames in order.
 */
export class TestClient {
  readonly socket: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #queue: ServerMessage[] = [];
  #waiter: (() => void) | undefined;
  #isClosed = false;
  #error: Error | undefined;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data) => {
      const parsed = parseServerFrame(data.toString());
      if (!parsed.ok) this.#error ??= new Error(`server sent an invalid frame: ${parsed.error}`);
      else if (parsed.invalid.length > 0) this.#error ??= new Error(`server sent invalid changes: ${JSON.stringify(parsed.invalid)}`);
      else this.#queue.push(parsed.message);
      this.#waiter?.();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.#isClosed = true;
        this.#waiter?.();
        resolve({ code, reason: reason.toString() });
      });
    });
    socket.on('error', () => {});
  }

  static async open(url: string, t?: { after(fn: () => void): void }): Promise<TestClient> {
    const socket = new WebSocket(url);
    const client = new TestClient(socket);
    t?.after(() => socket.terminate());
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return client;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next frame; rejects if none arrives within `ms` or the socket closes first. */
  async next(ms = 5000): Promise<ServerMessage> {
    const deadline = Date.now() + ms;
    while (this.#queue.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#isClosed) throw new Error('socket closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
    if (this.#error) throw this.#error;
    return this.#queue.shift()!;
  }

  /** Frames up to and including the first one of `type`. */
  async until(type: string, ms = 5000): Promise<ServerMessage[]> {
    const frames: ServerMessage[] = [];
    for (;;) {
      const frame = await this.next(ms);
      frames.push(frame);
      if (frame.type === type) return frames;
    }
  }

  /** Sends `sync` and reads through `sync_complete`. */
  async sync(lastLSN: string, extra: Record<string, unknown> = {}): Promise<ServerMessage[]> {
    this.send({ type: 'sync', clientId: 'test-client', lastLSN, ...extra });
    return this.until('sync_complete');
  }
}

/**
 * Reads frames until the socket closes; `closed` is how, or undefined if it was still open after
 * `ms` without a frame.
 */
export async function framesUntilClosed(
  client: TestClient,
  ms = 3000,
): Promise<{ frames: ServerMessage[]; closed: { code: number; reason: string } | undefined }> {
  const frames: ServerMessage[] = [];
  for (;;) {
    try {
      frames.push(await client.next(ms));
    } catch {
      break;
    }
  }
  const stillOpen = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 100));
  return { frames, closed: await Promise.race([client.closed, stillOpen]) };
}

/** The changes frames of a list of frames, as `{ changes, lsn }`. */
export function changeFrames(frames: readonly ServerMessage[]): { changes: Change[]; lsn: string }[] {
  return frames.flatMap((frame) => (frame.type === 'changes' ? [{ changes: frame.changes, lsn: frame.lsn }] : []));
}

// ---- the CLI as a child process ----------------------------------------------------------------

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Cli {
  child: ChildProcess;
  /** The server's own pid (node itself, also under `ulimit`, which execs it). */
  pid: number;
  port: number;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout and stderr so far. */
  output(): string;
}

/**
 * Starts `server/main.ts` on a free port and waits for its listening line; it is killed after
 * the test. `fileSizeLimit` (in 512-byte blocks) runs it under `ulimit -f`: a write past that size
 * fails with EFBIG (Node ignores SIGXFSZ), a real disk error, also as root.
 */
export async function startCli(
  t: { after(fn: () => void): void },
  args: string[],
  { env = {}, fileSizeLimit }: { env?: NodeJS.ProcessEnv; fileSizeLimit?: number } = {},
): Promise<Cli> {
  const command = [process.execPath, '--import', 'tsx', 'server/main.ts', '--port', '0', ...args];
  const options: SpawnOptionsWithStdioTuple<'ignore', 'pipe', 'pipe'> = {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  };
  const child = fileSizeLimit === undefined
    ? spawn(command[0]!, command.slice(1), options)
    : spawn('/bin/sh', ['-c', `ulimit -f ${fileSizeLimit} && exec "$@"`, 'sh', ...command], options);
  t.after(() => child.kill('SIGKILL'));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal })) as Cli['exited'];
  let stderr = '';
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); output += chunk.toString(); });
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    once(lines, 'line').then(([line]) => String(line)),
    exited.then(() => {
      throw new Error(`server exited before listening: ${output}`);
    }),
  ]);
  const listening = JSON.parse(first) as { event: string; port: number; url: string };
  if (listening.event !== 'listening') throw new Error(`unexpected first line: ${first}`);
  return { child, pid: child.pid!, port: listening.port, url: listening.url, exited, stderr: () => stderr, output: () => output };
}

/** A process's resident set size in MiB, from /proc (Linux). */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) / 1024;
}

/** Samples `rssMiB(pid)` every 50 ms until stopped; `stop()` returns the highest value seen. */
export function watchRss(pid: number): { stop(): number } {
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssMiB(pid));
    } catch {
      // the process is gone; the last value stands
    }
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}
