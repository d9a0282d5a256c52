/**
 * The liveness of one socket: a ping every interval while it is open, and a socket that brings no
 * frame for two intervals (a handshake that hangs included) is dead. Hearing a frame only notes
 * the time; the timer looks at it when it fires, so a burst of frames costs no timer work.
 */
export class Heartbeat {
  readonly #interval: number;
  readonly #ping: () => void;
  readonly #dead: () => void;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #heardAt = 0;

  constructor(interval: number, ping: () => void, dead: () => void) {
    this.#interval = interval;
    this.#ping = ping;
    this.#dead = dead;
  }

  /** Starts waiting for frames (dialing): two intervals without one mean the socket is dead. */
  watch(): void {
    this.heard();
    this.#watchdog ??= setTimeout(() => this.#check(), 2 * this.#interval);
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
  }

  stop(): void {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#watchdog);
    this.#pingTimer = undefined;
    this.#watchdog = undefined;
  }

  #check(): void {
    const silent = performance.now() - this.#heardAt;
    const limit = 2 * this.#interval;
    if (silent < limit) {
      this.#watchdog = setTimeout(() => this.#check(), limit - silent);
      return;
    }
    this.#watchdog = undefined;
    this.#dead();
  }
}
