import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { parseClientFrame, type KnownServerMessage, type SyncMessage, type WireOperation } from '../src/protocol/wire.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { Admission } from './admission.ts';
import { scopedChangesFrame } from './changes-frame.ts';
import { identify, ScopeSet, type Authenticate, type Identity } from './identity.ts';
import { OperationAnswers } from './operation-answers.ts';
import type { SharedFrame, SocketQueue } from './outbound.ts';
import { OperationWriter, type WriteRules } from './operation-writer.ts';
import type { RecordFrames } from './record-frames.ts';
import type { Receiver, Subscribers } from './subscribers.ts';
import { LogCompactedError, type StoredRecord } from './sync-store.ts';

export type { Authenticate } from './identity.ts';

export interface ConnectionSettings {
  /** The store, the limits, the clock and the app's write rules. */
  rules: WriteRules;
  /** The WebSocket's upgrade request, handed to `authenticate`. */
  request: IncomingMessage;
  /** Who is offered which live records. */
  subscribers: Subscribers<SyncConnection>;
  /** Most changes in one replay frame (a bigger record still goes whole, alone). */
  batchSize: number;
  /** Where this socket's frames wait to be written; it drops a client that does not keep up. */
  queue: SocketQueue;
  /** Ms a socket has to send an authorized `sync`; it is closed with 1008 after. */
  authTimeout: number;
  authenticate?: Authenticate;
  /** Called for every `operation` frame received, repeats included. */
  onOperationFrame(): void;
}

/** What this server sends. */
type ServerFrame = KnownServerMessage;

/** `idle`: no sync yet; `replaying`: catching up from the log; `live`: gets every new record. */
type Phase = 'idle' | 'replaying' | 'live';

const OPEN = 1;
/** An ordinary (retried) close: the client reconnects and re-sends what was not acknowledged. */
export const CLOSE_STORE_UNAVAILABLE = 1011;
export const STORE_UNAVAILABLE_REASON = 'store unavailable';

/** The server's side of one WebSocket: answers frames, replays the log, then streams records. */
export class SyncConnection implements Receiver {
  readonly #socket: WebSocket;
  readonly #settings: ConnectionSettings;
  readonly #lowWater: number;
  readonly #closed: Promise<void>;
  #phase: Phase = 'idle';
  /** Position of the last record sent to this client. */
  #cursor = 0n;
  /** The compaction floor when the current catch-up began. */
  #floor = 0n;
  /** Highest position a listener announced while replaying. */
  #announced = 0n;
  /** Bumped by every `sync` and by close; a replay stops when it no longer matches. */
  #generation = 0;
  readonly #admission: Admission;
  /** Frames are dispatched one after another, so an operation waits for an earlier sync's auth. */
  #inbox: Promise<void> = Promise.resolve();
  readonly #queue: SocketQueue;
  readonly #operations: OperationAnswers<SyncConnection>;
  /** Who the first authorized `sync` said this is; later ones must say the same. */
  #identity: Identity | undefined;
  #view = new ScopeSet([]);

  constructor(socket: WebSocket, settings: ConnectionSettings) {
    this.#socket = socket;
    this.#settings = settings;
    this.#queue = settings.queue;
    this.#lowWater = Math.max(1, Math.min(1 << 20, Math.floor(settings.queue.limits.maxBufferedBytes / 4)));
    this.#operations = new OperationAnswers(new OperationWriter(settings.rules), settings.subscribers, this, {
      send: (message) => this.#send(message),
      hasSeen: (position) => this.#phase === 'idle' || this.#cursor >= position,
      storeFailed: () => this.#socket.close(CLOSE_STORE_UNAVAILABLE, STORE_UNAVAILABLE_REASON),
    });
    this.#closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.#admission = new Admission(socket, settings.queue.limits, settings.authTimeout);
    socket.once('close', () => {
      this.#generation += 1;
      this.#phase = 'idle';
      settings.subscribers.leave(this);
      this.#operations.close();
    });
  }

  /** Who this connection acts as; undefined before its first authorized `sync`. */
  get identity(): Identity | undefined {
    return this.#identity;
  }

  /**
   * Sends `reset` (the client discards its data and syncs again from 0/0) and nothing more until
   * that `sync`. False when the connection has no authorized sync to reset.
   */
  reset(reason: string): boolean {
    if (this.#identity === undefined || this.#admission.refused || this.#socket.readyState !== OPEN) return false;
    this.#generation += 1;
    this.#phase = 'idle';
    this.#send({ type: 'reset', reason });
    this.#operations.releaseAll();
    return true;
  }

  /**
   * Moves the resume point of a live client that was offered no record up to `head` (all of them
   * out of its scopes) with `frame`, an empty batch at `head`, so that it never replays them.
   */
  advanceTo(head: bigint, frame: () => SharedFrame): void {
    if (this.#phase !== 'live' || this.#cursor >= head) return;
    this.#queue.send(frame());
    this.#advance(head);
  }

  /**
   * Handles one incoming frame. Never throws. Before an authorized `sync` anything else closes the
   * socket with 4001; after it, a bad frame is answered with `error`.
   */
  receive(data: RawData, isBinary: boolean): void {
    if (this.#admission.refused) return;
    const frame = isBinary ? data : rawToText(data);
    if (!this.#admission.admit(frame)) return;
    this.#inbox = this.#inbox
      .then(() => this.#dispatch(frame))
      .catch((error: unknown) => this.#send({ type: 'error', message: errorMessage(error) }));
  }

  /** Offers a newly durable record; its frames are built once for all who see the same of it. */
  deliver(frames: RecordFrames, ownOperation?: string): void {
    const { record } = frames;
    if (this.#phase === 'replaying') {
      if (record.position > this.#announced) this.#announced = record.position;
    } else if (this.#phase === 'live' && record.position > this.#cursor) {
      if (ownOperation !== undefined) {
        this.#queue.send(frames.own(this.#view, ownOperation));
      } else {
        const frame = frames.shared(this.#view);
        if (frame) this.#queue.send(frame);
      }
      this.#advance(record.position);
    }
  }

  /** Sends a frame outside the protocol's replies (e.g. `sync_request`). */
  send(message: ServerFrame): void {
    this.#send(message);
  }

  async #dispatch(frame: unknown): Promise<void> {
    // Frames that waited behind a sync that was refused go nowhere.
    if (this.#admission.refused) return;
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
    const identity = await this.#authenticate(message);
    if (identity === undefined) {
      this.#admission.deny();
      return;
    }
    if (this.#identity !== undefined && identity.id !== this.#identity.id) {
      this.#admission.forbid();
      return;
    }
    this.#identity = identity;
    this.#view = new ScopeSet(identity.scopes);
    this.#settings.subscribers.join(this, this.#view);
    this.#admission.grant();
    const from = parseLSN(message.lastLSN) ?? 0n;
    this.#replay(from, generation).catch((error: unknown) => {
      if (!this.#stale(generation)) this.#send({ type: 'sync_error', message: errorMessage(error) });
    });
  }

  /** The identity the sync's token belongs to; undefined when it is refused. */
  #authenticate(message: SyncMessage): Promise<Identity | undefined> {
    const { authenticate, request } = this.#settings;
    return identify(authenticate, message.token, { clientId: message.clientId, request }, `client ${JSON.stringify(message.clientId.slice(0, 80))}`);
  }

  /** The scopes a catch-up reads: undefined for a reader of every scope. */
  get #scopes(): readonly string[] | undefined {
    return this.#view.all ? undefined : this.#view.names;
  }

  async #replay(from: bigint, generation: number): Promise<void> {
    const { store } = this.#settings.rules;
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
      this.#operations.releaseAll();
      return;
    }
    this.#floor = await store.compactionFloor();
    if (this.#stale(generation)) return;
    if (from !== 0n && from < this.#floor) {
      this.#resetCompacted(from);
      return;
    }
    const total = await store.countChangesAfter(from, head, this.#scopes);
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

  /** The log no longer holds every delete after what this client has: it starts over from 0/0. */
  #resetCompacted(from: bigint): void {
    this.#phase = 'idle';
    this.#send({ type: 'reset', reason: `the server's log was compacted past this client's resume point (${formatLSN(from)}): deletes it has not seen are no longer kept` });
    this.#operations.releaseAll();
  }

  /** Sends the records in (cursor, until] in frames. False when this replay was superseded. */
  async #pump(until: bigint, generation: number): Promise<boolean> {
    const { batchSize } = this.#settings;
    const { store } = this.#settings.rules;
    const scopes = this.#scopes;
    while (this.#cursor < until) {
      let records: StoredRecord[];
      try {
        records = await store.changesAfter(this.#cursor, { until, maxChanges: batchSize, floor: this.#floor, ...(scopes === undefined ? {} : { scopes }) });
      } catch (error) {
        if (!(error instanceof LogCompactedError) || this.#stale(generation)) throw error;
        this.#resetCompacted(this.#cursor);
        return false;
      }
      if (this.#stale(generation)) return false;
      const last = records.at(-1);
      if (!last) {
        this.#advance(until);
        break;
      }
      const written = this.#queue.sendAndWait(scopedChangesFrame(records, this.#view, last.lsn, this.#operations.idsIn(records)));
      this.#advance(last.position);
      if (this.#queue.bytes > this.#lowWater) await Promise.race([written, this.#closed]);
      if (this.#stale(generation)) return false;
    }
    return true;
  }

  #operation(operation: WireOperation): void {
    this.#settings.onOperationFrame();
    const identity = this.#identity;
    if (!this.#admission.granted || identity === undefined) return;
    this.#operations.write(operation, identity);
  }

  #advance(position: bigint): void {
    this.#cursor = position;
    this.#operations.reached(position);
  }

  #stale(generation: number): boolean {
    return generation !== this.#generation || this.#socket.readyState !== OPEN;
  }

  #send(message: ServerFrame): void {
    this.#queue.send(JSON.stringify(message));
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
