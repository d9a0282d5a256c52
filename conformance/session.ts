import { WebSocket, type RawData } from 'ws';
import type { Change } from '../src/protocol/change.ts';
import { compareLSN, type LSN } from '../src/protocol/lsn.ts';
import { parseServerFrame, type ServerMessage } from '../src/protocol/wire.ts';

/** A batch in whichever form it came (`changes`, or one of the older forms), with where it stands. */
export interface Batch {
  lsn?: LSN;
  changes: Change[];
  /** The LSN this connection was at before the batch: the sync's `lastLSN` or the batch before. */
  after: LSN;
  operations?: string[];
}

/** A frame as it arrived, and the batch it is, if it is one. */
export interface Received {
  frame: ServerMessage;
  batch?: Batch;
  /** Its place in the order the frames arrived on the connection. */
  seq: number;
}

/** What the server did on any connection of the run that a rule about the whole run judges. */
export interface RunLog {
  /** Frames the protocol's parser refused, or whose change items it refused, or binary frames. */
  malformed: string[];
  /** Batches that did not come in increasing LSN order on their connection since its last sync. */
  disorder: string[];
}

export interface SessionOptions {
  /** How messages name this connection, e.g. `connection 3`. */
  name: string;
  url: string;
  clientId: string;
  token?: string;
  /** Ms to wait for an expected frame. */
  timeout: number;
  log: RunLog;
}

/** How a `sync` was answered. */
export interface SyncAnswer {
  outcome: 'complete' | 'reset' | 'sync_error';
  /** Every frame up to and including the answer. */
  frames: Received[];
  batches: Batch[];
  /** `sync_complete.lsn`, when it was sent. */
  lsn?: LSN;
  /** The position the catch-up brought this connection to: `sync_complete.lsn`, the last batch's, or `lastLSN`. */
  reached: LSN;
  /** `reset.reason` or `sync_error.message`. */
  message?: string;
}

/** The kit waited for a frame that did not come. */
export class WaitError extends Error {
  override readonly name = 'WaitError';
}

/**
 * One WebSocket to the server under test. Every frame is parsed with the protocol's own parser;
 * parsed frames wait in an inbox until a rule takes them, and every batch is checked against the
 * one before it on this connection.
 */
export class Session {
  readonly name: string;
  readonly #socket: WebSocket;
  readonly #options: SessionOptions;
  readonly #inbox: Received[] = [];
  #wake: (() => void) | undefined;
  #closed: { code: number; reason: string } | undefined;
  /** The `lastLSN` of the last sync sent. */
  #lastSync: LSN | undefined;
  /** The LSN of the last batch since that sync. */
  #lastBatch: LSN | undefined;
  #received = 0;
  /** The furthest position the server has told this connection about since its last sync. */
  #reached: LSN | undefined;

  private constructor(socket: WebSocket, options: SessionOptions) {
    this.name = options.name;
    this.#socket = socket;
    this.#options = options;
    socket.on('message', (data, isBinary) => this.#receive(data, isBinary));
    socket.on('close', (code, reason) => {
      this.#closed = { code, reason: reason.toString() };
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  /** Opens a connection; rejects, saying why, when the server does not accept the WebSocket. */
  static open(options: SessionOptions): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(options.url, { handshakeTimeout: options.timeout });
      socket.once('open', () => resolve(new Session(socket, options)));
      socket.once('unexpected-response', (_request, response) => {
        reject(new Error(`the server answered the WebSocket upgrade with HTTP ${response.statusCode}`));
        socket.terminate();
      });
      socket.once('error', (error) => reject(new Error(`cannot open ${options.url}: ${error.message}`)));
    });
  }

  /** How the server closed this connection, once it has. */
  get closed(): { code: number; reason: string } | undefined {
    return this.#closed;
  }

  send(frame: unknown): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(JSON.stringify(frame));
  }

  /** Sends `data` as it is: text, or a binary message. */
  sendRaw(data: string | Buffer, binary = false): void {
    if (this.#socket.readyState !== WebSocket.OPEN) return;
    this.#socket.send(data, { binary });
  }

  /**
   * Sends `sync` and reads the answer: through `sync_complete`, or a `reset` or `sync_error`.
   * Frames not taken before it are dropped: they answered the sync before.
   */
  async sync(lastLSN: LSN): Promise<SyncAnswer> {
    this.#inbox.length = 0;
    this.sendSync(lastLSN);
    const frames = await this.takeUntil(
      ({ frame }) => frame.type === 'sync_complete' || frame.type === 'reset' || frame.type === 'sync_error',
      `the answer to sync from ${lastLSN} (sync_complete, reset or sync_error)`,
    );
    const answer = frames.at(-1)!.frame;
    const batches = frames.flatMap(({ batch }) => (batch ? [batch] : []));
    const lsn = answer.type === 'sync_complete' ? answer.lsn : undefined;
    const reached = lsn ?? [...batches].reverse().find((batch) => batch.lsn !== undefined)?.lsn ?? lastLSN;
    const message = answer.type === 'reset' ? answer.reason : answer.type === 'sync_error' ? answer.message : undefined;
    return {
      outcome: answer.type === 'sync_complete' ? 'complete' : answer.type === 'reset' ? 'reset' : 'sync_error',
      frames,
      batches,
      ...(lsn === undefined ? {} : { lsn }),
      reached,
      ...(message === undefined ? {} : { message }),
    };
  }

  /** Sends `sync` without waiting for the answer. */
  sendSync(lastLSN: LSN): void {
    this.#lastSync = lastLSN;
    this.#lastBatch = undefined;
    this.#reached = undefined;
    this.send({ type: 'sync', clientId: this.#options.clientId, lastLSN, ...(this.#options.token === undefined ? {} : { token: this.#options.token }) });
  }

  /** Takes the first frame in the inbox that `match` accepts, waiting for it; the others stay. */
  async take<T>(match: (received: Received) => T | undefined, what: string): Promise<T> {
    for (;;) {
      for (const [index, received] of this.#inbox.entries()) {
        const found = match(received);
        if (found !== undefined) {
          this.#inbox.splice(index, 1);
          return found;
        }
      }
      await this.#next(what);
    }
  }

  /** Takes every frame up to and including the first one `until` accepts, waiting for it. */
  async takeUntil(until: (received: Received) => boolean, what: string): Promise<Received[]> {
    for (;;) {
      const index = this.#inbox.findIndex(until);
      if (index >= 0) return this.#inbox.splice(0, index + 1);
      await this.#next(what);
    }
  }

  /**
   * Waits until this connection has been sent the log up to `lsn` (a batch or sync_complete at
   * or after it): a write on another connection has then reached this one too.
   */
  async reach(lsn: LSN): Promise<void> {
    while (this.#reached === undefined || compareLSN(this.#reached, lsn) < 0) await this.#next(`the log up to ${lsn}`);
  }

  /** How many frames have arrived so far: a `seq` later frames are above. */
  get received(): number {
    return this.#received;
  }

  /**
   * Takes the first batch that carries a change to this entity and arrived after frame `since`,
   * waiting for it.
   */
  takeChangeOf(entityType: string, entityId: string, what: string, since = 0): Promise<Received & { batch: Batch }> {
    return this.take((received) => {
      const { batch } = received;
      return received.seq > since && batch?.changes.some((change) => change.entityType === entityType && change.entityId === entityId) ? { ...received, batch } : undefined;
    }, what);
  }

  /** Takes every frame that has arrived and not been taken. */
  drain(): Received[] {
    return this.#inbox.splice(0);
  }

  /**
   * Sends `ping` and takes every frame up to its `pong`: the frames the server sent before it
   * answered (a server answers one connection's frames in order).
   */
  async ping(what = 'pong'): Promise<Received[]> {
    this.send({ type: 'ping' });
    return this.takeUntil(({ frame }) => frame.type === 'pong', what);
  }

  /** Resolves once the connection is closed, or rejects after the timeout. */
  async whenClosed(what: string): Promise<{ code: number; reason: string }> {
    while (!this.#closed) await this.#next(what, true);
    return this.#closed;
  }

  close(): void {
    this.#socket.terminate();
  }

  async #next(what: string, closing = false): Promise<void> {
    if (this.#closed && !closing) {
      const { code, reason } = this.#closed;
      throw new WaitError(`the server closed ${this.name} (code ${code}${reason ? `, "${reason}"` : ''}) while the kit waited for ${what}`);
    }
    const arrived = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#options.timeout);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    this.#wake = undefined;
    if (!arrived) throw new WaitError(`no ${what} on ${this.name} within ${this.#options.timeout} ms`);
  }

  #receive(data: RawData, isBinary: boolean): void {
    const { log } = this.#options;
    if (isBinary) {
      log.malformed.push(`${this.name}: a binary message (frames are text)`);
      return;
    }
    const text = rawText(data);
    const parsed = parseServerFrame(text);
    if (!parsed.ok) {
      log.malformed.push(`${this.name}: ${parsed.error}: ${text.slice(0, 120)}`);
      return;
    }
    for (const invalid of parsed.invalid) log.malformed.push(`${this.name}: change #${invalid.index} of a batch: ${invalid.reason}`);
    const frame = parsed.message;
    const batch = batchOf(frame, this.#lastBatch ?? this.#lastSync ?? '0/0');
    if (batch?.lsn !== undefined) {
      if (this.#lastBatch !== undefined && compareLSN(batch.lsn, this.#lastBatch) <= 0) {
        log.disorder.push(`${this.name}: a batch at ${batch.lsn} came after one at ${this.#lastBatch}`);
      }
      this.#lastBatch = batch.lsn;
      this.#reached = batch.lsn;
    }
    if (frame.type === 'sync_complete') this.#reached = frame.lsn ?? this.#lastBatch ?? this.#lastSync;
    // The protocol's one demand on a client mid-session: answer sync_request with a fresh sync.
    if (frame.type === 'sync_request' && this.#lastSync !== undefined) this.sendSync(this.#lastBatch ?? this.#lastSync);
    const seq = ++this.#received;
    this.#inbox.push(batch ? { frame, batch, seq } : { frame, seq });
    this.#wake?.();
  }
}

/** The batch a frame carries, if it is one; `at` is where the connection stood before it. */
function batchOf(frame: ServerMessage, at: LSN): Batch | undefined {
  switch (frame.type) {
    case 'changes':
      return { lsn: frame.lsn, changes: frame.changes, after: at, ...(frame.operations ? { operations: frame.operations } : {}) };
    case 'batch_update':
    case 'sync_data':
      return { ...(frame.lsn === undefined ? {} : { lsn: frame.lsn }), changes: frame.data, after: at };
    case 'entity_update':
      return {
        ...(frame.lsn === undefined ? {} : { lsn: frame.lsn }),
        changes: [{ type: 'update', entityType: frame.entityType, entityId: frame.entityId, data: frame.data }],
        after: at,
      };
    case 'entity_delete':
      return { ...(frame.lsn === undefined ? {} : { lsn: frame.lsn }), changes: [{ type: 'delete', entityType: frame.entityType, entityId: frame.entityId }], after: at };
    default:
      return undefined;
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
