/**
 * A web-test-runner plugin that runs reference sync servers (server/main.ts) as child processes,
 * so browser tests can start, stop (gracefully or with SIGKILL) and restart them with
 * `executeServerCommand` from '@web/test-runner-commands':
 *
 * - `server-start` `{ batchSize?, maxPayload?, maxBuffered?, maxDepth?, heartbeatMs?, compactEvery?, tombstoneRetentionHours?, syncRequest?, token?, demo?, jwtSecret? }`
 *   starts a server on a free port with a fresh data directory.
 * - `server-stop` `{ id, signal?: 'SIGTERM' | 'SIGKILL' }` stops it and keeps its data.
 * - `server-restart` `{ id, signal? }` stops it and starts it again on the same port and data.
 * - `server-start-again` `{ id }` starts a stopped server on the same port and data.
 * - `server-remove` `{ id }` kills it (SIGKILL), deletes its data directory and forgets it.
 *
 * start, restart and start-again answer `{ id, port, wsUrl, httpUrl, dataDir }`; stop answers
 * `{ id, stopped: true }`, remove `{ id, removed: true }` (also for an id it no longer knows). `token`, when given, is the token every `sync` must carry (else 4001); `jwtSecret`, the secret of the JWTs clients authenticate with (SYNC_JWT_SECRET); `demo` runs the demo's users and scopes (--demo); `origin`, the test page's origin, is allowed to read the API (--allowed-origin).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
const PORT_RETRY_MS = 2_000;
const SIGNALS = new Set(['SIGTERM', 'SIGKILL', 'SIGINT']);

/** Numeric options and the CLI flag each becomes. */
const NUMBER_FLAGS = {
  batchSize: '--batch-size',
  maxPayload: '--max-payload',
  maxBuffered: '--max-buffered',
  maxDepth: '--max-depth',
  heartbeatMs: '--heartbeat-ms',
  compactEvery: '--compact-every',
  tombstoneRetentionHours: '--tombstone-retention-hours',
};

export function referenceServerPlugin() {
  /** @type {Map<string, { id: string, port: number, dataDir: string, flags: string[], token?: string, jwtSecret?: string, child?: import('node:child_process').ChildProcess, exited?: Promise<void> }>} */
  const servers = new Map();
  let counter = 0;

  const commands = {
    async 'server-start'(payload) {
      const options = payload ?? {};
      const flags = serverFlags(options);
      counter += 1;
      const id = `server-${counter}`;
      const dataDir = await mkdtemp(join(tmpdir(), 'sync-server-wtr-'));
      const server = { id, port: 0, dataDir, flags };
      if (typeof options.token === 'string') server.token = options.token;
      if (typeof options.jwtSecret === 'string') server.jwtSecret = options.jwtSecret;
      servers.set(id, server);
      await launch(server);
      return describe(server);
    },
    async 'server-stop'(payload) {
      const server = find(payload);
      await stop(server, signalOf(payload));
      return { id: server.id, stopped: true };
    },
    async 'server-restart'(payload) {
      const server = find(payload);
      await stop(server, signalOf(payload));
      await launch(server);
      return describe(server);
    },
    async 'server-start-again'(payload) {
      const server = find(payload);
      if (!server.child) await launch(server);
      return describe(server);
    },
    async 'server-remove'(payload) {
      const server = servers.get(payload?.id);
      if (server) {
        servers.delete(server.id);
        await stop(server, 'SIGKILL');
        await rm(server.dataDir, { recursive: true, force: true });
      }
      return { id: payload?.id, removed: true };
    },
  };

  function find(payload) {
    const server = servers.get(payload?.id);
    if (!server) throw new Error(`no reference server with id ${JSON.stringify(payload?.id)}`);
    return server;
  }

  return {
    name: 'reference-server',

    async executeCommand({ command, payload }) {
      const run = Object.hasOwn(commands, command) ? commands[command] : undefined;
      return run ? run(payload) : undefined;
    },

    async serverStop() {
      const all = [...servers.values()];
      servers.clear();
      await Promise.all(all.map((server) => stop(server, 'SIGKILL')));
      await Promise.all(all.map((server) => rm(server.dataDir, { recursive: true, force: true })));
    },
  };
}

function serverFlags(options) {
  const flags = [];
  for (const [key, flag] of Object.entries(NUMBER_FLAGS)) {
    const value = options[key];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 0) throw new Error(`${key} must be a non-negative integer`);
    flags.push(flag, String(value));
  }
  if (options.syncRequest === true) flags.push('--sync-request');
  if (options.demo === true) flags.push('--demo');
  // The test page's origin, for a server that authenticates (it answers no other page).
  if (typeof options.origin === 'string' && /^https?:\/\/[^/\s]+$/.test(options.origin)) flags.push('--allowed-origin', options.origin);
  return flags;
}

function signalOf(payload) {
  const signal = payload?.signal ?? 'SIGTERM';
  if (!SIGNALS.has(signal)) throw new Error(`unsupported signal ${JSON.stringify(signal)}`);
  return signal;
}

function describe(server) {
  return {
    id: server.id,
    port: server.port,
    wsUrl: `ws://${HOST}:${server.port}/api/sync`,
    httpUrl: `http://${HOST}:${server.port}`,
    dataDir: server.dataDir,
  };
}

/** Starts the server's process; on its old port, retrying for a moment while that is busy. */
async function launch(server) {
  const deadline = Date.now() + PORT_RETRY_MS;
  for (;;) {
    try {
      server.port = await spawnServer(server);
      return;
    } catch (error) {
      const busy = server.port !== 0 && /EADDRINUSE/.test(String(error?.message));
      if (!busy || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100)); // nothing tells when the old port is free again: try again shortly
    }
  }
}

function spawnServer(server) {
  const args = [
    '--import', 'tsx', 'server/main.ts',
    '--port', String(server.port),
    '--host', HOST,
    '--data-dir', server.dataDir,
    // The server also stops if this process dies without killing it.
    '--exit-on-stdin-end',
    ...server.flags,
  ];
  const env = { ...process.env };
  delete env.SYNC_TOKEN;
  delete env.SYNC_JWT_SECRET;
  if (server.token !== undefined) env.SYNC_TOKEN = server.token;
  if (server.jwtSecret !== undefined) env.SYNC_JWT_SECRET = server.jwtSecret;
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise((resolve) => child.once('exit', () => resolve()));

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { // a deadline for the first line, not a wait
      child.kill('SIGKILL');
      reject(new Error(`reference server did not start within ${START_TIMEOUT_MS} ms: ${stderr}`));
    }, START_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        const message = JSON.parse(line);
        if (message.event !== 'listening' || !Number.isInteger(message.port)) throw new Error(line);
        server.child = child;
        server.exited = exited;
        exited.then(() => {
          if (server.child === child) server.child = undefined;
        });
        resolve(message.port);
      } catch {
        child.kill('SIGKILL');
        reject(new Error(`unexpected output from the reference server: ${line}`));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`reference server exited (${code ?? signal}) before listening: ${stderr}`));
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Signals the server's process and waits for it to exit (SIGKILL after a grace period). */
async function stop(server, signal) {
  const { child, exited } = server;
  if (!child || !exited) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS); // a grace period, then the kill
  await exited;
  clearTimeout(timer);
  server.child = undefined;
  server.exited = undefined;
}
