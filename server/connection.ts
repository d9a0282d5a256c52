import type { RawData, WebSocket } from 'ws';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import {
  parseClientFrame,
  type KnownServerMessage,
  type OperationCompleteMessage,
  type SyncMessage,
  type WireOperation,
} from '../src/protocol/wire.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import type { Authenticate } from './authenticate.ts';
import { changesFrame } from './changes-frame.ts';
import type { InputLimits } from './limits.ts';
import type { SharedFrame, SocketQueue } from './outbound.ts';
import { OperationWriter } from './operation-writer.ts';
import type { StoredRecord, SyncStore } from './sync-store.ts';

export interface ConnectionSettings {
  store: SyncStore;
  /** Most changes in one replay frame (a bigger record still goes whole, alone). */
  batchSize: number;
  /** Where this socket's frames wait to be written; it drops a client that does not keep up. */
  queue: SocketQueue;
  /** Ms a socket has to send an authorized `sync`; it is closed with 1008 after. */
  authTimeout: number;
  authenticate?: Authenticate;
  limits: InputLimits;
  /** Called for every `operation` frame received, repeats included. */
  onOperationFrame(): void;
  now(): number;
}

/** What this server sends. */
type ServerFrame = KnownServerMessage;

/** `idle`: no sync yet; `replaying`: catching up from the log; `live`: gets every new record. */
type Phase = 'idle' | 'replaying' | 'live';

/**
 * `none`: nothing but a `sync` may come; `checking`: a `sync` is being authenticated and later
 * frames wait behind it; `granted`: an authorized `sync` was seen.
 */
type Access = 'none' | 'checking' | 'granted';

const OPEN = 1;
const CLOSE_UNAUTHORIZED = 4001;
/** A retried close: the client may try again (it may just have been slow). */
const CLOSE_POLICY = 1008;
/** Ms a refused client gets to answer the close before its socket is destroyed. */
const REFUSED_CLOSE_GRACE_MS = 1000;
/** An ordinary (retried) close: the client reconnects and re-sends what was not acknowledged. */
export const CLOSE_STORE_UNAVAILABLE = 1011;
export const STORE_UNAVAILABLE_REASON = 'store unavailable';

/** The server's side of one WebSocket: answers frames, replays the log, then streams records. */
export class SyncConnection {
  readonly #socket: WebSocket;
  readonly #settings: ConnectionSettings;
  readonly #lowWater: number;
  readonly #closed: Promise<void>;
  #phase: Phase = 'idle';
  /** Position of the last record sent to this client. */
  #cursor = 0n;
  /** Highest position a listener announced while replaying. */
  #announced = 0n;
  /** Bumped by every `sync` and by close; a replay stops when it no longer matches. */
  #generation = 0;
  #access: Access = 'none';
  #refused = false;
  /** Frames waiting behind a `sync` being authenticated, and their bytes: bounded like the queue. */
  #waiting = { frames: 0, bytes: 0 };
  /** Frames are dispatched one after another, so an operation waits for an earlier sync's auth. */
  #inbox: Promise<void> = Promise.resolve();
  readonly #queue: SocketQueue;
  /** `operation_complete` answers held until the client has been sent the change itself. */
  #heldAcks: { position: bigint; message: OperationCompleteMessage }[] = [];
  readonly #writer: OperationWriter;

  constructor(socket: WebSocket, settings: ConnectionSettings) {
    this.#socket = socket;
    this.#settings = settings;
    this.#queue = settings.queue;
    this.#lowWater = Math.max(1, Math.min(1 << 20, Math.floor(settings.queue.limits.maxBufferedBytes / 4)));
    this.#writer = new OperationWriter(settings.store, settings.limits, settings.now);
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    const deadline = setTimeout(() => {
      if (this.#access !== 'granted') this.#refuse(CLOSE_POLICY, `no authorized sync within ${settings.authTimeout} ms`);
    }, settings.authTimeout);
    socket.once('close', () => {
      clearTimeout(deadline);
      this.#generation += 1;
      this.#phase = 'idle';
      this.#heldAcks = [];
    });
  }

  /**
   * Handles one incoming frame. Never throws. Before an authorized `sync` anything else closes the
   * socket with 4001; after it, a bad frame is answered with `error`.
   */
  receive(data: RawData, isBinary: boolean): void {
    if (this.#refused) return;
    const frame = isBinary ? data : rawToText(data);
    if (this.#access === 'none') {
      const parsed = parseClientFrame(frame);
      if (!parsed.ok || parsed.message.type !== 'sync') {
        this.#refuse(CLOSE_UNAUTHORIZED, 'unauthorized: the first frame must be a sync');
        return;
      }
      this.#access = 'checking';
    } else if (this.#access === 'checking' && !this.#wait(frame)) {
      return;
    }
    this.#inbox = this.#inbox
      .then(() => this.#dispatch(frame))
      .catch((error: unknown) => this.#send({ type: 'error', message: errorMessage(error) }));
  }

  /** Offers a newly durable record; `frame` gives its `changes` frame, built once for all. */
  deliver(record: StoredRecord, frame: () => SharedFrame): void {
    if (this.#phase === 'replaying') {
      if (record.position > this.#announced) this.#announced = record.position;
    } else if (this.#phase === 'live' && record.position > this.#cursor) {
      void this.#queue.send(frame());
      this.#advance(record.position);
    }
  }

  /**
   * Closes a socket that was not let in, without waiting long for its client's close frame: one
   * that never reads would otherwise be held for ws's 30 s close timeout.
   */
  #refuse(code: number, reason: string): void {
    this.#refused = true;
    this.#socket.close(code, reason);
    // Nothing it sends is read any more.
    this.#socket.pause();
    setTimeout(() => this.#socket.terminate(), REFUSED_CLOSE_GRACE_MS).unref();
  }

  /** Counts a frame that waits for the sync's authentication; false (socket closed) past the socket's limits. */
  #wait(frame: string | RawData): boolean {
    const { maxBufferedBytes, maxBufferedMessages } = this.#queue.limits;
    this.#waiting.frames += 1;
    this.#waiting.bytes += typeof frame === 'string' ? frame.length : Buffer.byteLength(frame as Buffer);
    if (this.#waiting.frames <= maxBufferedMessages && this.#waiting.bytes <= maxBufferedBytes) return true;
    this.#refuse(CLOSE_POLICY, 'too many frames before the sync was authorized');
    return false;
  }

  /** Sends a frame outside the protocol's replies (e.g. `sync_request`). */
  send(message: ServerFrame): void {
    this.#send(message);
  }

  async #dispatch(frame: unknown): Promise<void> {
    // Frames that waited behind a sync that was refused go nowhere.
    if (this.#refused) return;
    const parsed = parseClientFrame(frame);
    if (!parsed.ok) {
      this.#send({ type: 'error', message: parsed.error });
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'ping':
        this.#send({ type: 'pong' });
        return;
      case 'sync':
        await this.#sync(message);
        return;
      case 'operation':
        this.#operation(message.operation);
        return;
      default: {
        const unexpected: never = message;
        throw new Error(`unhandled message ${JSON.stringify(unexpected)}`);
      }
    }
  }

  async #sync(message: SyncMessage): Promise<void> {
    const generation = ++this.#generation;
    this.#phase = 'idle';
    const { authenticate } = this.#settings;
    if (authenticate) {
      let allowed = false;
      try {
        allowed = (await authenticate(message.token, message.clientId)) === true;
      } catch {
        allowed = false;
      }
      if (!allowed) {
        this.#access = 'none';
        this.#refuse(CLOSE_UNAUTHORIZED, 'unauthorized');
        return;
      }
    }
    this.#access = 'granted';
    this.#waiting = { frames: 0, bytes: 0 };
    const from = parseLSN(message.lastLSN) ?? 0n;
    this.#replay(from, generation).catch((error: unknown) => {
      if (!this.#stale(generation)) this.#send({ type: 'sync_error', message: errorMessage(error) });
    });
  }

  async #replay(from: bigint, generation: number): Promise<void> {
    const { store } = this.#settings;
    // Replaying from here on: records announced while the shared head is read are caught up too.
    this.#phase = 'replaying';
    this.#cursor = from;
    this.#announced = store.headPosition;
    const head = max(await store.latestPosition(), this.#announced);
    if (this.#stale(generation)) return;
    if (from > head) {
      // The client has applied changes this log never held: the server's data was reset, or the
      // client synced with another server. Going live would be worse than useless: every batch
      // this log sends for a long while has an LSN at or below the client's, so the client would
      // skip it as "already applied" and silently diverge. `reset` tells it to start over from
      // 0/0; this connection stays idle (no live changes) until that next `sync`.
      this.#phase = 'idle';
      this.#send({
        type: 'reset',
        reason: `the client's resume point (lastLSN ${formatLSN(from)}) is ahead of this server's log, ` +
          `which ends at ${formatLSN(head)}: the server's data was reset or the client synced with another server`,
      });
      this.#releaseAcks(true);
      return;
    }
    const total = await store.countChangesAfter(from, head);
    if (this.#stale(generation)) return;
    this.#send({ type: 'sync_start', lsn: formatLSN(head), total });
    if (!(await this.#pump(head, generation))) return;
    this.#send({ type: 'sync_complete', lsn: formatLSN(head) });
    // Records that became durable during the replay follow as live frames; once the cursor has
    // caught up, going live happens in the same turn, so nothing falls in between.
    for (;;) {
      const target = max(this.#announced, store.headPosition);
      if (this.#cursor >= target) break;
      if (!(await this.#pump(target, generation))) return;
    }
    this.#phase = 'live';
  }

  /** Sends the records in (cursor, until] in frames. False when this replay was superseded. */
  async #pump(until: bigint, generation: number): Promise<boolean> {
    const { store, batchSize } = this.#settings;
    while (this.#cursor < until) {
      const records = await store.changesAfter(this.#cursor, { until, maxChanges: batchSize });
      if (this.#stale(generation)) return false;
      const last = records.at(-1);
      if (!last) {
        this.#advance(until);
        break;
      }
      const written = this.#queue.send(changesFrame(records, last.lsn));
      this.#advance(last.position);
      if (this.#queue.bytes > this.#lowWater) await Promise.race([written, this.#closed]);
      if (this.#stale(generation)) return false;
    }
    return true;
  }

  #operation(operation: WireOperation): void {
    this.#settings.onOperationFrame();
    if (this.#access !== 'granted') return;
    void this.#writer.write(operation).then((outcome) => {
      switch (outcome.kind) {
        case 'applied':
          this.#acknowledge(outcome.position, { type: 'operation_complete', id: operation.id, lsn: outcome.lsn });
          return;
        case 'rejected':
          this.#send({ type: 'operation_error', id: operation.id, message: outcome.message, ...(outcome.retryable ? { retryable: true } : {}) });
          return;
        case 'store-failed':
          // Closing is the one answer the protocol has that makes the client re-send every
          // unacknowledged operation: on its next connection, to a working store.
          this.#socket.close(CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON);
          return;
        default: {
          const unexpected: never = outcome;
          throw new Error(`unhandled outcome ${JSON.stringify(unexpected)}`);
        }
      }
    });
  }

  /** Answers an operation once the client has been sent its change (at once if not syncing). */
  #acknowledge(position: bigint, message: OperationCompleteMessage): void {
    if (this.#phase === 'idle' || this.#cursor >= position) this.#send(message);
    else this.#heldAcks.push({ position, message });
  }

  #advance(position: bigint): void {
    this.#cursor = position;
    if (this.#heldAcks.length > 0) this.#releaseAcks(false);
  }

  #releaseAcks(all: boolean): void {
    const held = this.#heldAcks;
    this.#heldAcks = [];
    for (const ack of held) {
      if (all || ack.position <= this.#cursor) this.#send(ack.message);
      else this.#heldAcks.push(ack);
    }
  }

  #stale(generation: number): boolean {
    return generation !== this.#generation || this.#socket.readyState !== OPEN;
  }

  #send(message: ServerFrame): void {
    void this.#queue.send(JSON.stringify(message));
  }
}

function rawToText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
