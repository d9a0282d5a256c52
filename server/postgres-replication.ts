import pg from 'pg';
import { formatLSN } from '../src/protocol/lsn.ts';
import { endClient } from './postgres-link.ts';

/**
 * A logical replication stream: a replication connection (`replication=database`) in COPY BOTH
 * mode after `START_REPLICATION SLOT ... LOGICAL`. The server decodes the WAL incrementally and
 * pushes each output plugin message as it is flushed; this end tells the server, with standby
 * status updates, how far it has durably consumed, which is what lets the slot release WAL.
 */
export interface ReplicationOptions {
  /** How to connect (the replication flag is added here). */
  config: pg.ClientConfig;
  slot: string;
  /** `START_REPLICATION` plugin options, e.g. `proto_version '1'`. */
  pluginOptions: string;
  /** Where to resume: the slot's confirmed position (the server never goes back before it). */
  from: bigint;
  /**
   * Ms of silence after which either end counts the other as gone: the server ends the stream
   * (wal_sender_timeout), and this end, which asks for an answer every third of it, gives up.
   */
  timeout: number;
}

export interface ReplicationHandlers {
  /** One output plugin message, in stream order; the buffer is only valid during the call. */
  message(data: Buffer): void;
  /** The server has sent everything up to `walEnd` (a keepalive). */
  keepalive(walEnd: bigint): void;
}

const XLOG_DATA = 0x77; // 'w'
const KEEPALIVE = 0x6b; // 'k'
const STATUS_UPDATE = 0x72; // 'r'
/** Ms from the Unix epoch to PostgreSQL's, 2000-01-01. */
const POSTGRES_EPOCH_MS = 946_684_800_000;

/** The part of pg's connection that COPY BOTH needs; pg has it, its types do not say so. */
interface CopyBothConnection {
  on(event: 'copyData', listener: (message: { chunk: Buffer }) => void): unknown;
  once(event: 'replicationStart', listener: () => void): unknown;
  sendCopyFromChunk(chunk: Buffer): void;
  stream: { pause(): void; resume(): void; destroy(): void };
}

function copyBoth(client: pg.Client): CopyBothConnection {
  const connection: unknown = client.connection;
  const usable = typeof connection === 'object' && connection !== null &&
    typeof (connection as { sendCopyFromChunk?: unknown }).sendCopyFromChunk === 'function' &&
    typeof (connection as { stream?: { pause?: unknown } }).stream?.pause === 'function';
  if (!usable) throw new Error('this version of pg cannot stream logical replication (its connection has no sendCopyFromChunk)');
  return connection as CopyBothConnection;
}

export class ReplicationStream {
  /** Settles when the stream is over: resolves when the server ended it, rejects on an error. */
  readonly ended: Promise<void>;
  readonly #client: pg.Client;
  readonly #connection: CopyBothConnection;
  readonly #timeout: number;
  #confirmed: bigint;
  #lastHeard = Date.now();
  #timer: NodeJS.Timeout | undefined;
  #fail!: (error: Error) => void;
  #closed = false;
  #ending: Promise<void> | undefined;

  private constructor(client: pg.Client, connection: CopyBothConnection, from: bigint, timeout: number) {
    this.#client = client;
    this.#connection = connection;
    this.#confirmed = from;
    this.#timeout = timeout;
    this.ended = new Promise<void>((resolve, reject) => {
      this.#fail = reject;
      client.on('end', () => resolve());
    });
    this.ended.catch(() => {});
  }

  /** Connects and starts streaming from `options.from`; rejects with the server's error (a missing or busy slot). */
  static async open(options: ReplicationOptions, handlers: ReplicationHandlers): Promise<ReplicationStream> {
    const config: pg.ClientConfig & { replication: 'database' } = {
      ...options.config,
      replication: 'database',
      options: `${options.config.options ?? ''} -c wal_sender_timeout=${options.timeout}`.trim(),
    };
    const client = new pg.Client(config);
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (error) {
      void endClient(client);
      throw error;
    }
    const stream = new ReplicationStream(client, copyBoth(client), options.from, options.timeout);
    client.on('error', (error) => stream.#end(error));
    stream.#connection.on('copyData', ({ chunk }) => stream.#receive(chunk, handlers));
    const started = new Promise<void>((resolve) => stream.#connection.once('replicationStart', resolve));
    const command = `START_REPLICATION SLOT "${options.slot}" LOGICAL ${formatLSN(options.from)} (${options.pluginOptions})`;
    // The command's answer comes only when the stream is over: it is the stream's life.
    const running = client.query(command).then(
      () => stream.#end(new Error('the server ended the replication stream')),
      (error: unknown) => stream.#end(error),
    );
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        stream.#end(new Error(`the replication stream did not start within ${options.timeout} ms`));
        resolve();
      }, options.timeout);
    });
    await Promise.race([started, running, late]);
    clearTimeout(timer);
    if (stream.#closed) {
      await stream.ended;
      throw new Error('the replication stream ended as it started');
    }
    stream.#timer = setInterval(() => stream.#watch(), Math.max(10, Math.floor(options.timeout / 3)));
    return stream;
  }

  /** Tells the server that everything before `lsn` is consumed for good (never goes back). */
  confirm(lsn: bigint): void {
    if (lsn <= this.#confirmed) return;
    this.#confirmed = lsn;
    this.#sendStatus(false);
  }

  get confirmed(): bigint {
    return this.#confirmed;
  }

  /** Stops reading (the server then waits on its socket); status updates still go out. */
  pause(): void {
    this.#connection.stream.pause();
  }

  resume(): void {
    this.#connection.stream.resume();
  }

  /** Ends the stream; `ended` settles (rejected with `why` if given). */
  async close(why?: Error): Promise<void> {
    this.#end(why);
    await this.#ending;
  }

  #receive(chunk: Buffer, handlers: ReplicationHandlers): void {
    if (this.#closed) return;
    this.#lastHeard = Date.now();
    try {
      if (chunk[0] === XLOG_DATA) {
        // 'w', start (int64), end of WAL (int64), send time (int64), then the plugin's message.
        handlers.message(chunk.subarray(25));
      } else if (chunk[0] === KEEPALIVE) {
        // 'k', end of WAL (int64), send time (int64), reply requested (byte).
        handlers.keepalive(chunk.readBigUInt64BE(1));
        if (chunk[17] === 1) this.#sendStatus(false);
      }
    } catch (error) {
      void this.close(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Asks for an answer every third of the timeout, and gives up after a whole timeout of silence. */
  #watch(): void {
    if (this.#closed) return;
    const silent = Date.now() - this.#lastHeard;
    if (silent > this.#timeout) {
      void this.close(new Error(`the replication stream was silent for ${silent} ms`));
      return;
    }
    this.#sendStatus(true);
  }

  #sendStatus(replyRequested: boolean): void {
    if (this.#closed) return;
    // 'r', written, flushed and applied positions, the time in µs since 2000-01-01, reply requested.
    const status = Buffer.alloc(34);
    status[0] = STATUS_UPDATE;
    status.writeBigUInt64BE(this.#confirmed, 1);
    status.writeBigUInt64BE(this.#confirmed, 9);
    status.writeBigUInt64BE(this.#confirmed, 17);
    status.writeBigInt64BE(BigInt(Date.now() - POSTGRES_EPOCH_MS) * 1000n, 25);
    status[33] = replyRequested ? 1 : 0;
    try {
      this.#connection.sendCopyFromChunk(status);
    } catch (error) {
      this.#end(error);
    }
  }

  /** Ends the connection once; `ended` rejects with `error` if there is one, else resolves on 'end'. */
  #end(error?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (error !== undefined) this.#fail(error instanceof Error ? error : new Error(String(error)));
    this.#ending = endClient(this.#client);
  }
}
