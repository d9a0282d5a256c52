/** Where a connection is in its lifecycle, and what the page sees of it. */
import { SyncStatus } from '../protocol/state.ts';

export type Phase =
  | 'idle' // not wanted
  | 'dialing'
  | 'open'
  | 'closing' // graceful disconnect flushing
  | 'waiting' // backoff timer running
  | 'offline' // wanted, but the network is down
  | 'failed'; // fatal close or invalid URL; only connect() leaves it

/** The connection's part of the `SyncState`. */
export interface ConnectionSnapshot {
  status: SyncStatus;
  isConnected: boolean;
  isConnecting: boolean;
  reconnectAttempts: number;
  online: boolean;
}

function statusOf(phase: Phase, attempt: number): SyncStatus {
  switch (phase) {
    case 'idle':
      return SyncStatus.disconnected;
    case 'dialing':
      return attempt === 0 ? SyncStatus.connecting : SyncStatus.reconnecting;
    case 'open':
    case 'closing':
      return SyncStatus.connected;
    case 'waiting':
      return SyncStatus.reconnecting;
    case 'offline':
      return SyncStatus.offline;
    case 'failed':
      return SyncStatus.error;
    default: {
      const unreachable: never = phase;
      return unreachable;
    }
  }
}

/** The snapshot of a connection in `phase`, after `attempt` retries, with the network `online` or not. */
export function snapshotOf(phase: Phase, attempt: number, online: boolean): ConnectionSnapshot {
  return {
    status: statusOf(phase, attempt),
    isConnected: phase === 'open' || phase === 'closing',
    isConnecting: phase === 'dialing',
    reconnectAttempts: attempt,
    online,
  };
}

export function sameSnapshot(a: ConnectionSnapshot, b: ConnectionSnapshot): boolean {
  return a.status === b.status
    && a.isConnected === b.isConnected
    && a.isConnecting === b.isConnecting
    && a.reconnectAttempts === b.reconnectAttempts
    && a.online === b.online;
}
