import type pg from 'pg';
import { TransactionReader, type DecodedTransaction } from './pgoutput.ts';
import { describe, isSlotBusy, isSlotGone } from './postgres-errors.ts';
import { ReplicationStream } from './postgres-replication.ts';
import { NAMES, recreateSlot, slotState } from './postgres-schema.ts';
import { stampPending, stampTransactions, type StampOptions } from './postgres-stamper.ts';

export interface StampStreamOptions extends StampOptions {
  slot: string;
  /** Most transactions one stamp takes; reading pauses while twice as many wait. */
  limit: number;
  /** Ms before following the slot again after the stream was lost; doubles up to MAX_RETRY_MS. */
  retryInterval: number;
  /** Ms of silence after which the stream counts as lost, at either end. */
  timeout: number;
  /** How to open the replication connection. */
  config: pg.ClientConfig;
}

/** What the stamper needs from its store. */
export interface StampStreamHost {
  /** The session that holds the stamper lock; undefined once it is lost. */
  session(): pg.Client | undefined;
  /** Records were added to the change log. */
  stamped(): void;
  /** A stamp failed on the session (a lost database is the store's to notice). */
  trouble(error: unknown): void;
}

const MAX_RETRY_MS = 5000;
/** Most bytes of messages one stamp takes, and half of what may wait before reading pauses. */
const BATCH_BYTES = 16 * 1024 * 1024;
const PLUGIN_OPTIONS = `proto_version '1', publication_names '${NAMES.publication}', messages 'true'`;

/** A stamp failed: the stream is restarted from the slot's confirmed position, the store is told. */
class StampFailure extends Error {
  constructor(readonly error: unknown) {
    super(describe(error));
  }
}

/**
 * The stamper's work while this instance holds the stamper lock: follows the slot over a
 * replication connection, stamps each batch of committed transactions as it arrives (whatever
 * arrived while the previous stamp ran is the next batch), and then confirms the batch's end to
 * the server, so the slot releases the WAL behind it. A lost stream is followed again, with
 * backoff, from the slot's confirmed position: what was sent and not confirmed comes again and is
 * known by the stamp. A slot that is missing or invalidated is created anew and the writes kept in
 * the pending table are stamped from there.
 */
export class StampStream {
  readonly #options: StampStreamOptions;
  readonly #host: StampStreamHost;
  readonly #reader = new TransactionReader();
  #queue: DecodedTransaction[] = [];
  #queuedBytes = 0;
  #stream: ReplicationStream | undefined;
  #draining: Promise<void> | undefined;
  #drainQueued = false;
  /** Queries of this stamper under way on the session. */
  #usingSession = 0;
  /** Set when a stamp added records since the stream was (re)started. */
  #progress = false;
  #stopped = false;
  #wake: (() => void) | undefined;
  readonly #running: Promise<void>;

  constructor(options: StampStreamOptions, host: StampStreamHost) {
    this.#options = options;
    this.#host = host;
    this.#running = this.#run();
  }

  /**
   * Runs a trivial query on the session unless a stamp is using it, so that the server does not end
   * it as idle (and take the stamper lock with it) while no writes come.
   */
  touch(): void {
    const session = this.#host.session();
    if (!session || this.#usingSession > 0 || this.#stopped) return;
    void this.#onSession(() => session.query('SELECT 1')).catch((error: unknown) => this.#host.trouble(error));
  }

  /** Ends the stream and waits for a stamp under way. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#stream?.close();
    await this.#running;
  }

  async #run(): Promise<void> {
    let delay = this.#options.retryInterval;
    while (!this.#stopped) {
      this.#progress = false;
      try {
        await this.#follow();
      } catch (error) {
        if (this.#stopped) break;
        // A slot gone since it was looked at is recreated by the next round, a busy one is let go soon.
        if (error instanceof StampFailure) this.#host.trouble(error.error);
        else if (!isSlotGone(error) && !isSlotBusy(error)) process.emitWarning(`sync store (PostgreSQL): the replication stream was lost (${describe(error)}); following the slot again`);
      }
      if (this.#stopped) break;
      if (this.#progress) delay = this.#options.retryInterval;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
    await this.#draining;
  }

  /** Follows the slot until the stream ends. */
  async #follow(): Promise<void> {
    const session = this.#host.session();
    if (!session) return;
    let state = await this.#slotState(session);
    if ('gone' in state) {
      await this.#recover(session, state.gone);
      state = await this.#slotState(session);
      if ('gone' in state) return;
    }
    this.#reader.reset();
    this.#queue = [];
    this.#queuedBytes = 0;
    const stream = await ReplicationStream.open({
      config: this.#options.config,
      slot: this.#options.slot,
      pluginOptions: PLUGIN_OPTIONS,
      from: state.confirmed,
      timeout: this.#options.timeout,
    }, {
      message: (data) => {
        const transaction = this.#reader.read(data);
        if (!transaction) return;
        this.#queue.push(transaction);
        this.#queuedBytes += size(transaction);
        if (this.#full()) this.#stream?.pause();
        this.#drainSoon();
      },
      keepalive: (walEnd) => {
        // Everything sent before it is stamped: the slot may move past it.
        const idle = !this.#reader.inTransaction && this.#queue.length === 0 && !this.#draining && !this.#drainQueued;
        if (idle) this.#stream?.confirm(walEnd);
      },
    });
    this.#stream = stream;
    if (this.#stopped) await stream.close();
    this.#drainSoon();
    try {
      await stream.ended;
    } finally {
      this.#stream = undefined;
      await this.#draining;
    }
  }

  async #slotState(session: pg.Client): Promise<Awaited<ReturnType<typeof slotState>>> {
    try {
      return await this.#onSession(() => slotState(session, this.#options.slot));
    } catch (error) {
      throw new StampFailure(error);
    }
  }

  async #onSession<T>(use: () => Promise<T>): Promise<T> {
    this.#usingSession += 1;
    try {
      return await use();
    } finally {
      this.#usingSession -= 1;
    }
  }

  /** Stamps what has arrived, once the messages read together have all been taken in. */
  #drainSoon(): void {
    if (this.#drainQueued || this.#draining) return;
    this.#drainQueued = true;
    queueMicrotask(() => {
      this.#drainQueued = false;
      const stream = this.#stream;
      if (!stream || this.#draining || this.#queue.length === 0) return;
      this.#draining = this.#drain(stream).finally(() => {
        this.#draining = undefined;
      });
    });
  }

  async #drain(stream: ReplicationStream): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#stopped && this.#stream === stream) {
        const session = this.#host.session();
        if (!session) throw new Error('the session holding the stamper lock is gone');
        const batch = this.#nextBatch();
        const added = await this.#onSession(() => stampTransactions(session, batch, this.#options));
        stream.confirm(batch.at(-1)!.endLsn);
        if (!this.#full()) stream.resume();
        if (added > 0) {
          this.#progress = true;
          this.#host.stamped();
        }
      }
    } catch (error) {
      await stream.close(new StampFailure(error));
    }
  }

  /** The transactions that arrived first: at most `limit`, and about BATCH_BYTES (at least one). */
  #nextBatch(): DecodedTransaction[] {
    let count = 0;
    let bytes = 0;
    while (count < this.#queue.length && count < this.#options.limit) {
      const next = size(this.#queue[count]!);
      if (count > 0 && bytes + next > BATCH_BYTES) break;
      bytes += next;
      count += 1;
    }
    this.#queuedBytes -= bytes;
    return this.#queue.splice(0, count);
  }

  #full(): boolean {
    return this.#queue.length >= 2 * this.#options.limit || this.#queuedBytes >= 2 * BATCH_BYTES;
  }

  /** Creates the slot anew and stamps the writes kept since the last stamp. */
  async #recover(session: pg.Client, gone: 'missing' | 'invalidated'): Promise<void> {
    const slot = this.#options.slot;
    console.error(`sync store (PostgreSQL) stamper: replication slot ${slot} is ${gone}; creating it again and stamping the writes committed since the last stamp from ${NAMES.pending}`);
    try {
      const added = await this.#onSession(async () => {
        await recreateSlot(session, slot);
        return stampPending(session, this.#options.limit, this.#options);
      });
      if (added > 0) {
        this.#progress = true;
        this.#host.stamped();
      }
    } catch (error) {
      throw new StampFailure(error);
    }
  }
}

function size(transaction: DecodedTransaction): number {
  let bytes = 0;
  for (const message of transaction.messages) bytes += message.content.length;
  return bytes;
}
