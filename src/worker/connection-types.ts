/** What a connection is given and what it tells: the types at the boundary of connection.ts. */
import type { LSN } from '../protocol/lsn.ts';
import type { ConnectionOptions, SyncErrorDetail } from '../protocol/state.ts';
import type { ConnectionSnapshot } from './connection-phase.ts';

/** The part of `WebSocket` the connection uses; mock-socket's class fits it too. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: Event) => void): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

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
