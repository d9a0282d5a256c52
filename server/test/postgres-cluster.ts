/**
 * A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temporary directory,
 * reachable only through a unix socket in that 0700 directory (no TCP, so its trust
 * authentication is open to nobody else), `wal_level=logical`, run as a non-root user (initdb
 * refuses root), stopped and deleted by `destroy()`, and at the latest when this process exits or
 * is ended by SIGINT, SIGTERM or SIGHUP; a cluster left behind by a process that died harder
 * (SIGKILL) is swept by the next start. It uses the machine's
 * own PostgreSQL (scripts/ensure-postgres.mjs installs Debian's when it is missing) and never a
 * database that was there before; where none can be found or started it throws, saying why.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { appendFile, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { findPostgresBin } from '../../scripts/find-postgres.mjs';

export interface ClusterOptions {
  /** fsync and synchronous commit as a production server has them. Default false: faster tests. */
  durable?: boolean;
  /** The size of a WAL segment in MiB (initdb --wal-segsize): 1 to 1024, a power of 2. Default 16. */
  walSegmentMiB?: number;
  /**
   * Start the write-ahead log at the segment holding this position (pg_resetwal -l) instead of
   * near 0/0: e.g. just below a 32-bit boundary, so that LSNs cross it within a test.
   */
  walStart?: bigint;
}

export interface PostgresCluster {
  /** The port number in the socket's name (there is no TCP listener). */
  readonly port: number;
  /** The unix socket the server listens on. */
  readonly socketPath: string;
  /** `postgres://postgres@localhost:port/<database>?host=<socket directory>` */
  url(database?: string): string;
  /** Creates a fresh, empty database and returns its URL. */
  createDatabase(prefix?: string): Promise<string>;
  /** Stops the server (fast shutdown: sessions are terminated), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it and deletes its directory. Idempotent. */
  destroy(): Promise<void>;
}

interface RunAs {
  uid: number;
  gid: number;
  /** The command line prefix that runs a program as that user, empty when we are not root. */
  prefix: string[];
}

/** Runs PostgreSQL as `postgres` (Debian's package creates it) when we are root, else as ourselves. */
function runAs(): RunAs {
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) return { uid, gid: process.getgid?.() ?? -1, prefix: [] };
  let ids: string;
  try {
    ids = execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim() + ' ' +
      execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('running as root, but there is no `postgres` user to run the test cluster as (initdb refuses root): install Debian\'s postgresql package, which creates it');
  }
  const [u, g] = ids.split(' ').map(Number);
  return { uid: u!, gid: g!, prefix: ['runuser', '-u', 'postgres', '--'] };
}

const PREFIX = 'sync-pg-';
const OWNER_FILE = 'owner.pid';
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Stops and deletes the clusters of test processes that died without cleaning up (SIGKILL). */
function sweepStale(user: RunAs, bin: string): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir()).filter((name) => name.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of entries) {
    const dir = join(tmpdir(), name);
    let owner: number;
    try {
      owner = Number(readFileSync(join(dir, OWNER_FILE), 'utf8'));
    } catch {
      continue; // being created right now, or not ours
    }
    if (!Number.isInteger(owner) || owner <= 0 || alive(owner)) continue;
    const data = join(dir, 'data');
    if (existsSync(join(data, 'postmaster.pid'))) {
      const command = [...user.prefix, join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'];
      spawnSync(command[0]!, command.slice(1), { stdio: 'ignore', timeout: 30_000 });
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(user: RunAs, bin: string, program: string, args: string[]): void {
  const command = [...user.prefix, join(bin, program), ...args];
  const result = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() || String(result.error ?? result.signal);
    throw new Error(`${program} failed: ${output}`);
  }
}

let databases = 0;

/** The name of the WAL segment file that holds `lsn` (timeline 1). */
function walSegmentName(lsn: bigint, segmentMiB: number): string {
  const hex = (value: bigint) => value.toString(16).toUpperCase().padStart(8, '0');
  return `00000001${hex(lsn >> 32n)}${hex((lsn & 0xffff_ffffn) / BigInt(segmentMiB * 1024 * 1024))}`;
}

export async function startPostgresCluster(options: ClusterOptions = {}): Promise<PostgresCluster> {
  const bin = findPostgresBin();
  if (!bin) {
    throw new Error('PostgreSQL is not installed: run `node scripts/ensure-postgres.mjs` (as root it installs Debian\'s postgresql) or set PG_BIN');
  }
  const user = runAs();
  sweepStale(user, bin);
  const dir = await mkdtemp(join(tmpdir(), PREFIX));
  await writeFile(join(dir, OWNER_FILE), String(process.pid));
  if (user.prefix.length > 0) await chown(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  // One cluster per directory, so the socket's name need not be unique across the machine.
  const port = 5432;
  const socketPath = join(dir, `.s.PGSQL.${port}`);
  let running = false;
  let destroyed = false;
  // A last resort when this process exits without destroy() (a crash): stop and delete the cluster.
  // pg_ctl detaches the postmaster, so nothing else would stop it.
  const stopNow = () => {
    const command = [...user.prefix, join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', 'stop'];
    if (running) spawnSync(command[0]!, command.slice(1), { stdio: 'ignore' });
    running = false;
    rmSync(dir, { recursive: true, force: true });
  };
  // A signal that ends the process skips 'exit': stop, delete, then die of the same signal (unless
  // someone else handles it, in which case that handler decides).
  const onSignal = (signal: NodeJS.Signals) => {
    unwatch();
    stopNow();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const unwatch = () => {
    process.off('exit', stopNow);
    for (const signal of SIGNALS) process.off(signal, onSignal);
  };
  process.once('exit', stopNow);
  for (const signal of SIGNALS) process.once(signal, onSignal);

  const start = async () => {
    run(user, bin, 'pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', 'start']);
    running = true;
  };
  try {
    // Trust, but only over the socket in our 0700 directory: no TCP listener at all.
    const segmentMiB = options.walSegmentMiB ?? 16;
    run(user, bin, 'initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C', `--wal-segsize=${segmentMiB}`]);
    if (options.walStart !== undefined) run(user, bin, 'pg_resetwal', ['-l', walSegmentName(options.walStart, segmentMiB), '-D', data]);
    const durable = options.durable === true;
    await appendFile(join(data, 'postgresql.conf'), [
      '',
      `port = ${port}`,
      "listen_addresses = ''",
      `unix_socket_directories = '${dir}'`,
      "unix_socket_permissions = 0700",
      'wal_level = logical',
      'max_replication_slots = 64',
      'max_wal_senders = 8',
      'max_connections = 300',
      `fsync = ${durable ? 'on' : 'off'}`,
      // Logical decoding reads only flushed WAL: an asynchronous commit would reach clients late.
      'synchronous_commit = on',
      `full_page_writes = ${durable ? 'on' : 'off'}`,
      '',
    ].join('\n'));
    await start();
  } catch (error) {
    unwatch();
    stopNow();
    await rm(dir, { recursive: true, force: true });
    throw new Error(`could not start a throwaway PostgreSQL cluster (${bin}): ${error instanceof Error ? error.message : String(error)}`);
  }

  const url = (database = 'postgres') => `postgres://postgres@localhost:${port}/${database}?host=${encodeURIComponent(dir)}`;
  return {
    port,
    socketPath,
    url,
    async createDatabase(prefix = 'sync') {
      databases += 1;
      const name = `${prefix}_${process.pid}_${databases}`;
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async stop() {
      run(user, bin, 'pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      running = false;
    },
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      unwatch();
      if (running) {
        try {
          run(user, bin, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
        } catch {
          stopNow();
        }
        running = false;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
