/**
 * The socket lifecycle (docs/protocol.md "Connecting", "Heartbeat and reconnection"): dialing with the
 * resume point in the URL, the `sync` frame after `open`, heartbeat and dead-socket detection,
 * retries on the schedule of retry-schedule.ts brought forward by the page's signals, offline
 * handling and the fatal close codes.
 */
import type { LSN } from '../protocol/lsn.ts';
import type { ConnectionOptions, SyncErrorDetail } from '../protocol/state.ts';
import type { ClientMessage, SyncMessage } from '../protocol/wire.ts';
import type { WakeReason } from '../protocol/worker-messages.ts';
import { snapshotOf, sameSnapshot, type ConnectionSnapshot, type Phase } from './connection-phase.ts';
import { buildEndpoint, closeDetails, isFatalCloseCode } from './dialing.ts';
import { FOCUS_WAKE_MS, retryDelay, VISIBLE_WAKE_MS, type RetryState } from './retry-schedule.ts';

/** The part of `WebSocket` the connection uses; mock-socket's class fits it too. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: Event) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;
const NORMAL_CLOSURE = 1000;
/** How long a graceful disconnect waits for buffered frames to leave. */
const FLUSH_LIMIT_MS = 5_000;
const FLUSH_POLL_MS = 10;

/** What the connection puts in the endpoint and in every `sync` frame. */
export interface SyncIdentity {
  clientId: string;
  lastLSN: LSN;
  token?: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
}

/** A retry is scheduled after `delay` ms; `attempt` counts from 1. */
export interface RetryInfo {
  attempt: number;
  delay: number;
}

export interface ConnectionListener {
  /** Some field of the snapshot changed. */
  change(snapshot: ConnectionSnapshot): void;
  /** The socket opened and the `sync` frame was sent. */
  open(): void;
  /** A frame arrived, as the socket delivered it (not yet parsed). */
  message(data: unknown): void;
  /** The socket is gone, closed by either side. */
  close(info: CloseInfo): void;
  reconnecting(info: RetryInfo): void;
  /** `invalid_url`, or `closed` for a fatal close code. */
  error(detail: SyncErrorDetail): void;
}

export interface ConnectionConfig extends ConnectionOptions {
  /** Absolute ws: or wss: URL, without the resume parameters. */
  url: string;
  WebSocket: WebSocketConstructor;
  /** A number in [0, 1): the jitter source. */
  random: () => number;
  /** Milliseconds on a monotonic clock: the outage's age and the waits the page's signals shorten. */
  now: () => number;
  identity: () => SyncIdentity;
  listener: ConnectionListener;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * One logical connection that keeps a socket open while wanted. Methods never throw; outcomes
 * are reported through the listener.
 */
export class Connection {
  readonly #config: ConnectionConfig;
  #phase: Phase = 'idle';
  #wanted = false;
  #online = true;
  #visible = true;
  #attempt = 0;
  /**
   * When the outage under way began: the drop of the last connection that reached `sync_complete`,
   * the first failed dial after `connect()`, or the network coming back. Unset while none is.
   */
  #outageSince: number | undefined;
  /** The retry under way: when its wait began (the last attempt ended), when it is due, and what its delay was drawn for. */
  #wait: { since: number; due: number; drawn: RetryState } = { since: 0, due: 0, drawn: { attempt: 0, outageAge: 0, visible: true } };
  #socket: WebSocketLike | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #snapshot: ConnectionSnapshot;

  constructor(config: ConnectionConfig) {
    this.#config = config;
    this.#snapshot = snapshotOf(this.#phase, this.#attempt, this.#online);
  }

  get snapshot(): ConnectionSnapshot {
    return this.#snapshot;
  }

  /** True from `connect` until `disconnect`, `stop` or a fatal close. */
  get wanted(): boolean {
    return this.#wanted;
  }

  /** True while frames can be sent. */
  get isOpen(): boolean {
    return this.#phase === 'open';
  }

  /** Starts connecting and keeps reconnecting until `disconnect` or a fatal close. */
  connect(): void {
    const fresh = this.#phase === 'idle' || this.#phase === 'failed';
    this.#wanted = true;
    if (!fresh) return;
    this.#attempt = 0;
    this.#outageSince = undefined;
    if (this.#online) {
      this.#dial();
    } else {
      this.#phase = 'offline';
      this.#emitChange();
    }
  }

  /** Dials now, skipping a backoff wait under way and the offline check. */
  forceConnect(): void {
    this.#wanted = true;
    if (this.#phase === 'dialing' || this.#phase === 'open' || this.#phase === 'closing') return;
    if (this.#phase === 'idle' || this.#phase === 'failed') {
      this.#attempt = 0;
      this.#outageSince = undefined;
    }
    this.#dial();
  }

  /** Closes with 1000 and stops reconnecting; `graceful` waits for buffered frames first. */
  async disconnect(graceful: boolean): Promise<void> {
    this.#wanted = false;
    this.#clearRetry();
    const socket = this.#socket;
    if (socket && this.#phase === 'open' && graceful) {
      this.#phase = 'closing';
      const started = Date.now();
      while (
        this.#socket === socket &&
        socket.readyState === OPEN &&
        (Number(socket.bufferedAmount) || 0) > 0 &&
        Date.now() - started < FLUSH_LIMIT_MS
      ) {
        await delay(FLUSH_POLL_MS);
      }
      if (this.#socket !== socket) return;
    }
    if (this.#socket) {
      this.#abandon(NORMAL_CLOSURE, 'client disconnect');
    } else if (this.#phase !== 'idle') {
      this.#phase = 'idle';
      this.#emitChange();
    }
  }

  /**
   * Closes at once and for good because this connection is replaced (e.g. the database had to be
   * reopened): it never dials again, and its close reports `willReconnect` as the caller says,
   * since it is the successor that connects.
   */
  stop(reason: string, willReconnect: boolean): void {
    this.#wanted = false;
    this.#clearRetry();
    if (this.#socket) {
      this.#abandon(NORMAL_CLOSURE, reason, willReconnect);
    } else if (this.#phase !== 'idle') {
      this.#phase = 'idle';
      this.#emitChange();
    }
  }

  /** Drops the current socket and reconnects (after backoff), e.g. after a storage failure. */
  restart(reason: string): void {
    if (this.#socket) this.#abandon(NORMAL_CLOSURE, reason);
  }

  /**
   * The page's view of the network. Offline: no dialing. Back online: dial at once, and a failure
   * then starts a young outage (the network was the trouble so far, not the server).
   */
  setOnline(online: boolean): void {
    if (online === this.#online) return;
    this.#online = online;
    if (!online && this.#phase === 'waiting') {
      this.#clearRetry();
      this.#phase = 'offline';
    }
    if (online && this.#phase === 'offline' && this.#wanted) {
      this.#outageSince = undefined;
      this.#dial();
      return;
    }
    this.#emitChange();
  }

  /** This tab's page became visible or hidden: the next delays follow that page's schedule. */
  setVisible(visible: boolean): void {
    if (visible === this.#visible) return;
    this.#visible = visible;
    if (visible) this.wake('visible');
  }

  /**
   * A page of this client is in use (this tab's or a follower's): it became visible, or got the
   * focus. A retry under way comes sooner, never sooner than the minimum wait since the last
   * attempt that keeps a page switched back and forth from hammering the server: `visible` dials
   * at once after 1 s of waiting and otherwise when a visible page's schedule would; `focus`
   * dials at once after 5 s and otherwise when the wait reaches 5 s.
   */
  wake(reason: WakeReason): void {
    if (this.#phase !== 'waiting') return;
    const { since, due, drawn } = this.#wait;
    const now = this.#config.now();
    let sooner: number;
    if (reason === 'focus') {
      sooner = since + FOCUS_WAKE_MS;
    } else if (now - since >= VISIBLE_WAKE_MS) {
      sooner = since;
    } else if (!drawn.visible) {
      sooner = since + retryDelay({ ...drawn, visible: true }, this.#config, this.#config.random);
    } else {
      return;
    }
    if (sooner < due || sooner <= now) this.#armRetry(sooner);
  }

  /** Called once a connection reached `sync_complete`: the next retry starts from the first delay. */
  resetBackoff(): void {
    this.#outageSince = undefined;
    if (this.#attempt === 0) return;
    this.#attempt = 0;
    this.#emitChange();
  }

  /** Sends one frame as JSON; false when the socket is not open or refused it. */
  send(frame: ClientMessage | Record<string, unknown>): boolean {
    const socket = this.#socket;
    if (!socket || this.#phase !== 'open' || socket.readyState !== OPEN) return false;
    try {
      socket.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends a fresh `sync` frame with the current resume point. */
  sendSync(): boolean {
    const { clientId, lastLSN, token } = this.#config.identity();
    const frame: SyncMessage = { type: 'sync', clientId, lastLSN, ...(token === undefined ? {} : { token }) };
    return this.send(frame);
  }

  #dial(): void {
    this.#clearRetry();
    const { clientId, lastLSN } = this.#config.identity();
    const endpoint = buildEndpoint(this.#config.url, clientId, lastLSN);
    let socket: WebSocketLike;
    try {
      if (endpoint === undefined) throw new Error('not an absolute ws: or wss: URL');
      socket = new this.#config.WebSocket(endpoint);
    } catch (error) {
      this.#wanted = false;
      this.#phase = 'failed';
      this.#emitChange();
      const why = error instanceof Error ? error.message : String(error);
      this.#config.listener.error({
        code: 'invalid_url',
        message: `Cannot connect to ${JSON.stringify(this.#config.url)}: ${why}`,
      });
      return;
    }
    this.#socket = socket;
    this.#phase = 'dialing';
    // A handshake that hangs is dead too: the same two-interval limit applies before `open`.
    this.#armWatchdog();
    socket.addEventListener('open', () => {
      if (this.#socket === socket) this.#opened();
    });
    socket.addEventListener('message', (event) => {
      if (this.#socket !== socket) return;
      this.#armWatchdog();
      this.#config.listener.message((event as MessageEvent).data);
    });
    socket.addEventListener('close', (event) => {
      if (this.#socket !== socket) return;
      const { code, reason } = closeDetails(event);
      this.#dropped(code, reason, isFatalCloseCode(code));
    });
    this.#emitChange();
  }

  #opened(): void {
    this.#phase = 'open';
    this.sendSync();
    this.#startHeartbeat();
    this.#emitChange();
    this.#config.listener.open();
  }

  /** Forgets the socket at once (its late events are ignored), closes it, and handles the drop. */
  #abandon(code: number, reason: string, announce?: boolean): void {
    const socket = this.#socket;
    if (!socket) return;
    this.#socket = undefined;
    try {
      socket.close(code, reason);
    } catch {
      // Already closed, or the code was refused: either way it is gone for us.
    }
    this.#dropped(code, reason, false, announce);
  }

  /**
   * The socket is gone. The state it leads to is published before the close is reported, which
   * says `announce` as `willReconnect` when given (see `stop`).
   */
  #dropped(code: number, reason: string, fatal: boolean, announce?: boolean): void {
    // 'closing' is an open socket flushing before a graceful disconnect; a connect() during the
    // flush makes the drop lead to a retry, and its close must still be reported (the outbox
    // re-sends what was in flight only when it hears of it).
    const wasOpen = this.#phase === 'open' || this.#phase === 'closing';
    this.#stopHeartbeat();
    this.#socket = undefined;
    const listener = this.#config.listener;
    if (fatal) {
      this.#wanted = false;
      this.#phase = 'failed';
      this.#emitChange();
      listener.close({ code, reason, willReconnect: false });
      listener.error({
        code: 'closed',
        message: `The server closed the connection with code ${code}${reason ? `: ${reason}` : ''}; not retrying`,
      });
      return;
    }
    const willReconnect = this.#wanted;
    let retry: RetryInfo | undefined;
    if (!willReconnect) {
      this.#phase = 'idle';
      this.#emitChange();
    } else if (!this.#online) {
      this.#phase = 'offline';
      this.#emitChange();
    } else {
      retry = this.#scheduleRetry();
    }
    // A dial that never opened is not a disconnection the page needs to hear of: the retry says it.
    if (wasOpen || !willReconnect) listener.close({ code, reason, willReconnect: announce ?? willReconnect });
    if (retry) listener.reconnecting(retry);
  }

  #scheduleRetry(): RetryInfo {
    const now = this.#config.now();
    this.#outageSince ??= now;
    const drawn: RetryState = { attempt: this.#attempt, outageAge: now - this.#outageSince, visible: this.#visible };
    const wait = retryDelay(drawn, this.#config, this.#config.random);
    this.#attempt += 1;
    this.#phase = 'waiting';
    this.#wait = { since: now, due: now + wait, drawn };
    this.#armRetry(now + wait);
    this.#emitChange();
    return { attempt: this.#attempt, delay: wait };
  }

  /** (Re)sets the retry timer to fire at `due` on the `now` clock. */
  #armRetry(due: number): void {
    this.#clearRetry();
    this.#wait.due = due;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#phase === 'waiting') this.#dial();
    }, Math.max(0, due - this.#config.now()));
  }

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #startHeartbeat(): void {
    this.#stopHeartbeat();
    this.#pingTimer = setInterval(() => this.send({ type: 'ping' }), this.#config.heartbeatInterval);
    this.#armWatchdog();
  }

  /** Two heartbeat intervals without any frame mean the socket is dead. */
  #armWatchdog(): void {
    if (this.#watchdog !== undefined) clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      this.#abandon(NORMAL_CLOSURE, 'heartbeat timeout');
    }, 2 * this.#config.heartbeatInterval);
  }

  #stopHeartbeat(): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    if (this.#watchdog !== undefined) clearTimeout(this.#watchdog);
    this.#pingTimer = undefined;
    this.#watchdog = undefined;
  }

  #emitChange(): void {
    const next = snapshotOf(this.#phase, this.#attempt, this.#online);
    if (sameSnapshot(next, this.#snapshot)) return;
    this.#snapshot = next;
    this.#config.listener.change(next);
  }
}
