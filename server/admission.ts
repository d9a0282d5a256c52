import type { RawData, WebSocket } from 'ws';
import { parseClientFrame } from '../src/protocol/wire.ts';
import type { OutboundLimits } from './outbound-limits.ts';

/**
 * `none`: nothing but a `sync` may come; `checking`: a `sync` is being authenticated and later
 * frames wait behind it; `granted`: an authorized `sync` was seen.
 */
type Access = 'none' | 'checking' | 'granted';

const CLOSE_UNAUTHORIZED = 4001;
/** A `sync` that names another identity than the connection's first: reconnecting as that one is the way. */
const CLOSE_FORBIDDEN = 4003;
/** A retried close: the client may try again (it may just have been slow). */
const CLOSE_POLICY = 1008;
/** Ms a refused client gets to answer the close before its socket is destroyed. */
const REFUSED_CLOSE_GRACE_MS = 1000;

/**
 * Whether one socket is let in. Nothing but a `sync` may come first; frames that follow while it
 * is authenticated wait, counted and bounded like the socket's queue. A socket that has sent no
 * authorized `sync` `authTimeout` ms after it opened, or is refused, is closed without waiting
 * long for its client's close frame.
 */
export class Admission {
  readonly #socket: WebSocket;
  readonly #limits: Pick<OutboundLimits, 'maxBufferedBytes' | 'maxBufferedMessages'>;
  #access: Access = 'none';
  #refused = false;
  /** Frames waiting behind a `sync` being authenticated, and their bytes. */
  #waiting = { frames: 0, bytes: 0 };

  /** Starts the socket's deadline for an authorized `sync`. */
  constructor(socket: WebSocket, limits: Pick<OutboundLimits, 'maxBufferedBytes' | 'maxBufferedMessages'>, authTimeout: number) {
    this.#socket = socket;
    this.#limits = limits;
    const deadline = setTimeout(() => {
      if (this.#access !== 'granted') this.#refuse(CLOSE_POLICY, `no authorized sync within ${authTimeout} ms`);
    }, authTimeout);
    socket.once('close', () => clearTimeout(deadline));
  }

  /** The socket was refused: nothing it sent, or sends, is read. */
  get refused(): boolean {
    return this.#refused;
  }

  /** An authorized `sync` was seen. */
  get granted(): boolean {
    return this.#access === 'granted';
  }

  /**
   * Whether `frame`, from a socket not refused, goes on to be dispatched. Before any `sync` only a
   * `sync` does, and anything else closes the socket with 4001; behind a `sync` being
   * authenticated, a frame waits while the waiting ones stay within the socket's limits, past
   * which it is closed.
   */
  admit(frame: string | RawData): boolean {
    if (this.#access === 'none') {
      const parsed = parseClientFrame(frame);
      if (!parsed.ok || parsed.message.type !== 'sync') {
        this.#refuse(CLOSE_UNAUTHORIZED, 'unauthorized: the first frame must be a sync');
        return false;
      }
      this.#access = 'checking';
      return true;
    }
    return this.#access !== 'checking' || this.#wait(frame);
  }

  /** The `sync` was authorized: every frame is let through from now on. */
  grant(): void {
    this.#access = 'granted';
    this.#waiting = { frames: 0, bytes: 0 };
  }

  /** The `sync` was not authorized: closes with 4001. */
  deny(): void {
    this.#access = 'none';
    this.#refuse(CLOSE_UNAUTHORIZED, 'unauthorized');
  }

  /** The `sync` was authorized as another identity than the connection's first: closes with 4003. */
  forbid(): void {
    this.#refuse(CLOSE_FORBIDDEN, 'forbidden: a connection keeps the identity of its first sync');
  }

  /** Counts a frame that waits for the sync's authentication; false (socket closed) past the socket's limits. */
  #wait(frame: string | RawData): boolean {
    const { maxBufferedBytes, maxBufferedMessages } = this.#limits;
    this.#waiting.frames += 1;
    this.#waiting.bytes += typeof frame === 'string' ? frame.length : Buffer.byteLength(frame as Buffer);
    if (this.#waiting.frames <= maxBufferedMessages && this.#waiting.bytes <= maxBufferedBytes) return true;
    this.#refuse(CLOSE_POLICY, 'too many frames before the sync was authorized');
    return false;
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
}
