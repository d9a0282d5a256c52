import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { OutboundLimits } from './outbound-limits.ts';

/**
 * A text frame built once, WebSocket header and all, and handed to every socket it goes to: in
 * memory once, however many hold it, and written to each with one call (a fan-out to 10,000
 * sockets spends its time in those calls).
 */
export class SharedFrame {
  /** The whole frame as it goes on the wire: an unmasked, final text frame. */
  readonly framed: Buffer;
  /** Its payload (the JSON text), a view into `framed`. */
  readonly bytes: Buffer;
  /** Queues holding it, not yet written. */
  holders = 0;

  constructor(text: string) {
    const length = Buffer.byteLength(text, 'utf8');
    const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
    this.framed = Buffer.allocUnsafe(header + length);
    this.framed[0] = 0x81;
    if (header === 2) this.framed[1] = length;
    else if (header === 4) {
      this.framed[1] = 126;
      this.framed.writeUInt16BE(length, 2);
    } else {
      this.framed[1] = 127;
      this.framed.writeBigUInt64BE(BigInt(length), 2);
    }
    this.framed.write(text, header, 'utf8');
    this.bytes = this.framed.subarray(header);
  }
}

/** Streams corked in this turn of the event loop, all uncorked at its end by one callback. */
let corked = new Set<Socket>();

function uncorkAll(): void {
  const streams = corked;
  corked = new Set();
  for (const stream of streams) stream.uncork();
}

/** Why a socket was dropped, for its close reason and the stats. */
export type DropReason = 'buffered bytes' | 'buffered messages' | 'stalled' | 'server memory';

/**
 * The server's memory for data in flight, counted in bytes: frames queued on sockets (a shared
 * frame once, however many sockets hold it) and request bodies being read. Over the budget, the
 * socket queues holding the most bytes are dropped until it fits again; a body that does not fit
 * is refused.
 */
export class MemoryBudget {
  readonly #limits: OutboundLimits;
  readonly #queues = new Set<SocketQueue>();
  readonly #onDrop: (reason: DropReason) => void;
  #held = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: OutboundLimits, onDrop: (reason: DropReason) => void = () => {}) {
    this.#limits = limits;
    this.#onDrop = onDrop;
  }

  get held(): number {
    return this.#held;
  }

  get limits(): OutboundLimits {
    return this.#limits;
  }

  /** Starts the sweep that drops stalled sockets. */
  start(): void {
    this.#timer ??= setInterval(() => this.#sweep(), Math.max(10, Math.min(1000, this.#limits.stallTimeout / 4)));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** A queue for `socket` (over the TCP socket `stream`), forgotten when the socket closes. */
  queueFor(socket: WebSocket, stream?: Socket): SocketQueue {
    const queue = new SocketQueue(socket, this, stream);
    this.#queues.add(queue);
    socket.once('close', () => queue.release());
    return queue;
  }

  /** Takes `bytes` for a request body; false (nothing taken) when they do not fit. */
  reserve(bytes: number): boolean {
    if (this.#held + bytes > this.#limits.memoryBudget) return false;
    this.#held += bytes;
    return true;
  }

  free(bytes: number): void {
    this.#held -= bytes;
  }

  /** @internal Called by queues as they take and release bytes. */
  adjust(bytes: number): void {
    this.#held += bytes;
    if (bytes > 0 && this.#held > this.#limits.memoryBudget) this.#shed();
  }

  /** @internal */
  forget(queue: SocketQueue): void {
    this.#queues.delete(queue);
  }

  /** @internal */
  dropped(reason: DropReason): void {
    this.#onDrop(reason);
  }

  /** Drops the queues holding the most until the budget is kept again. */
  #shed(): void {
    const largest = [...this.#queues].sort((a, b) => b.bytes - a.bytes);
    for (const queue of largest) {
      if (this.#held <= this.#limits.memoryBudget || queue.bytes === 0) break;
      queue.drop('server memory');
    }
  }

  #sweep(): void {
    const now = performance.now();
    for (const queue of this.#queues) {
      if (queue.stalledSince !== undefined && now - queue.stalledSince > this.#limits.stallTimeout) queue.drop('stalled');
    }
  }
}

/**
 * The frames handed to one socket and not yet written to the kernel. A client that lets more bytes
 * (beyond one frame) or frames pile up than its limits, or leaves them unread for `stallTimeout`,
 * is dropped.
 */
export class SocketQueue {
  readonly #socket: WebSocket;
  readonly #budget: MemoryBudget;
  /** Queued frames in send order, with the bytes each counts for here and server-wide. */
  readonly #pending: { shared?: SharedFrame; bytes: number; counted: number }[] = [];
  #bytes = 0;
  #released = false;
  /** performance.now() when the oldest queued frame was queued or the last one was written. */
  #since = 0;
  readonly #stream: Socket | undefined;
  readonly #onWritten = () => this.#written();

  constructor(socket: WebSocket, budget: MemoryBudget, stream?: Socket) {
    this.#socket = socket;
    this.#budget = budget;
    this.#stream = stream;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get limits(): OutboundLimits {
    return this.#budget.limits;
  }

  get messages(): number {
    return this.#pending.length;
  }

  /** When frames have waited since, while any are queued. */
  get stalledSince(): number | undefined {
    return this.#pending.length === 0 ? undefined : this.#since;
  }

  /** Sends a text frame. */
  send(frame: string | SharedFrame): void {
    this.#enqueue(frame, this.#onWritten);
  }

  /** Sends a text frame; resolves when it is written, or dropped with its socket. */
  sendAndWait(frame: string | SharedFrame): Promise<void> {
    return new Promise<void>((resolve) => {
      const sent = this.#enqueue(frame, () => {
        this.#written();
        resolve();
      });
      if (!sent) resolve();
    });
  }

  /** False when the socket is gone (nothing sent); `done` runs once the frame is written. */
  #enqueue(frame: string | SharedFrame, done: () => void): boolean {
    if (this.#released || this.#socket.readyState !== this.#socket.OPEN) return false;
    const shared = typeof frame === 'string' ? undefined : frame;
    const bytes = shared ? shared.bytes.length : Buffer.byteLength(frame as string);
    // A shared frame counts server-wide only for its first holder.
    const counted = shared ? (shared.holders++ === 0 ? bytes : 0) : bytes;
    if (this.#pending.length === 0) this.#since = performance.now();
    this.#pending.push(shared ? { shared, bytes, counted } : { bytes, counted });
    this.#bytes += bytes;
    const stream = this.#stream;
    if (stream) this.#cork(stream);
    // Without an extension (the server negotiates none) ws writes each frame to the stream at
    // once, so a frame written straight to the stream keeps its place among those ws sends.
    if (shared && stream && this.#socket.extensions === '') stream.write(shared.framed, done);
    else this.#socket.send(shared ? shared.bytes : (frame as string), { binary: false }, done);
    this.#budget.adjust(counted);
    const { maxBufferedBytes, maxBufferedMessages } = this.#budget.limits;
    // One frame, however big, can always be sent: a client is over its limit when frames pile up.
    if (this.#bytes > maxBufferedBytes && this.#pending.length > 1) this.drop('buffered bytes');
    else if (this.#pending.length > maxBufferedMessages) this.drop('buffered messages');
    return true;
  }

  /**
   * Holds the frames sent in this turn of the event loop and writes them together at its end: a
   * burst of answers costs one system call, not one per frame.
   */
  #cork(stream: Socket): void {
    if (corked.has(stream)) return;
    if (corked.size === 0) process.nextTick(uncorkAll);
    corked.add(stream);
    stream.cork();
  }

  /** Terminates the socket and gives back everything it held. */
  drop(reason: DropReason): void {
    if (this.#released) return;
    this.release();
    this.#budget.dropped(reason);
    this.#socket.terminate();
  }

  /** Gives back everything queued (the socket closed). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#budget.forget(this);
    for (const frame of this.#pending.splice(0)) this.#let(frame);
    this.#bytes = 0;
  }

  #written(): void {
    if (this.#released) return;
    const frame = this.#pending.shift();
    if (!frame) return;
    this.#since = performance.now();
    this.#bytes -= frame.bytes;
    this.#let(frame);
  }

  /** Releases one frame's share of the server-wide count. */
  #let(frame: { shared?: SharedFrame; bytes: number; counted: number }): void {
    if (frame.shared) {
      frame.shared.holders -= 1;
      // The bytes of a shared frame leave the count with its last holder, whoever counted them.
      if (frame.shared.holders === 0) this.#budget.adjust(-frame.shared.bytes.length);
    } else {
      this.#budget.adjust(-frame.counted);
    }
  }
}
