/**
 * The liveness of one socket: a ping every interval while it is open, and a socket that brings no
 * frame for two intervals (a handshake that hangs included) is dead. Hearing a frame only notes
 * the time; the timer looks at it when it fires, so a burst of frames costs no timer work. A timer
 * that fires more than an interval late means this thread was stalled (busy, or throttled), not
 * that the socket was silent: the socket then gets two more intervals, once per silence.
 */
export class Heartbeat {
  readonly #interval: number;
  readonly #ping: () => void;
  readonly #dead: () => void;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #heardAt = 0;
  /** When the watchdog was due. */
  #dueAt = 0;
  /** Whether this silence already had its extra time for a stalled thread. */
  #graced = false;

  constructor(interval: number, ping: () => void, dead: () => void) {
    this.#interval = interval;
    this.#ping = ping;
    this.#dead = dead;
  }

  /** Starts waiting for frames (dialing): two intervals without one mean the socket is dead. */
  watch(): void {
    this.heard();
    this.#watchdog ??= this.#arm(2 * this.#interval);
  }

  /** The socket is open: pings start too. */
  start(): void {
    this.stop();
    this.#pingTimer = setInterval(this.#ping, this.#interval);
    this.watch();
  }

  /** A frame came. */
  heard(): void {
    this.#heardAt = performance.now();
    this.#graced = false;
  }

  stop(): void {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#watchdog);
    this.#pingTimer = undefined;
    this.#watchdog = undefined;
  }

  #arm(delay: number): ReturnType<typeof setTimeout> {
    this.#dueAt = performance.now() + delay;
    return setTimeout(() => this.#check(), delay);
  }

  #check(): void {
    const now = performance.now();
    const silent = now - this.#heardAt;
    const limit = 2 * this.#interval;
    if (silent < limit) {
      this.#watchdog = this.#arm(limit - silent);
      return;
    }
    if (now - this.#dueAt > this.#interval && !this.#graced) {
      this.#graced = true;
      this.#watchdog = this.#arm(limit);
      return;
    }
    this.#watchdog = undefined;
    this.#dead();
  }
}
