/**
 * What the tabs of one client (one database and client id) tell each other over their
 * BroadcastChannel, and the parser that turns an untrusted message into one of them. The channel
 * and the Web Lock are named with {@link TAB_PROTOCOL_VERSION}, so that tabs running another
 * version of this code (an old tab after a deploy) neither hear these messages nor share a leader.
 */
import { isRecord, parseChange, type Change, type InvalidChange } from './change.ts';
import { parseSerializedError, SYNC_ERROR_CODES, type SerializedError } from './errors.ts';
import type { EntityRef } from './effects.ts';
import { isLSN, type LSN } from './lsn.ts';
import { parseQueuedOperation } from './queued-operation.ts';
import { attempt, bool, fail, finite, list, nonEmpty, oneOf, record, text } from './shape.ts';
import {
  SyncStatus,
  type QueuedOperation,
  type SyncErrorDetail,
  type SyncProgress,
  type SyncState,
} from './state.ts';
import type { WorkerEvent } from './worker-messages.ts';

/** Bump when a message below changes shape: tabs of different versions then ignore each other. */
export const TAB_PROTOCOL_VERSION = 1;

/**
 * What a follower asks the leader to do. `visible` and `focus`: the follower's page became visible
 * (or is visible while the leader waits to reconnect), or got the focus.
 */
export type TabCommand = 'connect' | 'force_connect' | 'sync' | 'clear_operations' | 'visible' | 'focus';

/** The events a leader relays: all of its worker's but `apply`, which only its own page answers. */
export type TabEvent = Exclude<WorkerEvent, { type: 'apply' }>;

export type TabMessage =
  /** Leader to all: an event of its worker, `status` snapshots included. */
  | { kind: 'event'; event: TabEvent }
  /** A tab that just started asks the leader for its state (and so tells it someone listens). */
  | { kind: 'hello' }
  /** A tab just started leading: the others answer `hello`, so it knows it has listeners. */
  | { kind: 'leading' }
  /** A tab is queueing these operations: every tab shows them at once, before they are stored. */
  | { kind: 'queued'; operations: QueuedOperation[] }
  /** A tab stored these operations in the shared outbox: the leader sends them. */
  | { kind: 'stored'; operations: QueuedOperation[] }
  /** A tab could not store these operations it had told of: every tab stops showing them. */
  | { kind: 'dropped'; operations: QueuedOperation[] }
  /** A follower asks the leader to act; answered with `reply` when `id` is given. */
  | { kind: 'command'; id?: string; command: TabCommand }
  | { kind: 'reply'; id: string; ok: true; value: unknown }
  | { kind: 'reply'; id: string; ok: false; error: SerializedError }
  /** The leader removed these operations from the outbox: their promises reject everywhere. */
  | { kind: 'cleared'; ids: string[] };

/** The Web Lock and BroadcastChannel name of one client's tabs. */
export function tabsName(dbName: string, clientId: string): string {
  return `sync-connection/tabs-v${TAB_PROTOCOL_VERSION}:${dbName}:${clientId}`;
}

const COMMANDS: readonly TabCommand[] = ['connect', 'force_connect', 'sync', 'clear_operations', 'visible', 'focus'];
const STATUSES: readonly SyncStatus[] = Object.values(SyncStatus);

/** A message from another tab, every field checked; `undefined` for anything else. */
export function parseTabMessage(value: unknown): TabMessage | undefined {
  const parsed = attempt(() => parseMessage(value));
  return parsed.ok ? parsed.value : undefined;
}

/** The ids a leader answers `clear_operations` with; throws a `ShapeError`. */
export function parseIds(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((id) => typeof id === 'string')) fail('expected a list of ids');
  return value;
}

function parseMessage(value: unknown): TabMessage {
  if (!isRecord(value)) fail('message is not an object');
  switch (value.kind) {
    case 'hello':
    case 'leading':
      return { kind: value.kind };
    case 'event':
      return { kind: 'event', event: parseEvent(record(value, 'event')) };
    case 'queued':
    case 'stored':
    case 'dropped':
      return { kind: value.kind, operations: list(value, 'operations').map(parseQueuedOperation) };
    case 'command': {
      const command = oneOf(value, 'command', COMMANDS);
      return value.id === undefined ? { kind: 'command', command } : { kind: 'command', id: nonEmpty(value, 'id'), command };
    }
    case 'reply': {
      const id = nonEmpty(value, 'id');
      if (bool(value, 'ok')) return { kind: 'reply', id, ok: true, value: value.value };
      const error = parseSerializedError(value.error);
      if (!error) fail('"error" must be a serialised error');
      return { kind: 'reply', id, ok: false, error };
    }
    case 'cleared':
      return { kind: 'cleared', ids: parseIds(value.ids) };
    default:
      fail('unknown kind');
  }
}

function lsn(obj: Record<string, unknown>, key: string): LSN {
  const value = obj[key];
  if (!isLSN(value)) fail(`"${key}" must be an LSN`);
  return value;
}

/** `{ [key]: value }` when the field is there, checked; `{}` when it is absent. */
function optional<K extends string, T>(
  obj: Record<string, unknown>,
  key: K,
  check: (obj: Record<string, unknown>, key: K) => T,
): { [P in K]?: T } {
  return (obj[key] === undefined ? {} : { [key]: check(obj, key) }) as { [P in K]?: T };
}

function count(obj: Record<string, unknown>, key: string): number {
  const value = finite(obj, key);
  if (!Number.isInteger(value) || value < 0) fail(`"${key}" must be a whole number`);
  return value;
}

function parseProgress(obj: Record<string, unknown>): SyncProgress {
  return { applied: count(obj, 'applied'), ...optional(obj, 'total', count) };
}

function parseErrorDetail(obj: Record<string, unknown>): SyncErrorDetail {
  return { code: oneOf(obj, 'code', SYNC_ERROR_CODES), message: text(obj, 'message'), ...('cause' in obj ? { cause: obj.cause } : {}) };
}

function parseState(obj: Record<string, unknown>): SyncState {
  return Object.freeze({
    status: oneOf(obj, 'status', STATUSES),
    clientId: text(obj, 'clientId'),
    lastLSN: lsn(obj, 'lastLSN'),
    isConnected: bool(obj, 'isConnected'),
    isConnecting: bool(obj, 'isConnecting'),
    syncing: bool(obj, 'syncing'),
    progress: obj.progress === null ? null : Object.freeze(parseProgress(record(obj, 'progress'))),
    pendingOperations: count(obj, 'pendingOperations'),
    reconnectAttempts: count(obj, 'reconnectAttempts'),
    role: oneOf(obj, 'role', ['leader', 'follower'] as const),
    online: bool(obj, 'online'),
    lastError: obj.lastError === null ? null : Object.freeze(parseErrorDetail(record(obj, 'lastError'))),
  });
}

function parseChangeList(obj: Record<string, unknown>): Change[] {
  return list(obj, 'changes').map((item, index) => {
    const change = parseChange(item);
    if (typeof change === 'string') fail(`change #${index}: ${change}`);
    return change;
  });
}

function parseEntityRef(item: unknown): EntityRef {
  if (!isRecord(item)) fail('an entity must be an object');
  return { entityType: nonEmpty(item, 'entityType'), entityId: nonEmpty(item, 'entityId') };
}

function parseInvalid(item: unknown): InvalidChange {
  if (!isRecord(item)) fail('an invalid change must be an object');
  return { index: count(item, 'index'), reason: text(item, 'reason') };
}

function parseEvent(obj: Record<string, unknown>): TabEvent {
  const type = obj.type;
  switch (type) {
    case 'status':
      return { type, state: parseState(record(obj, 'state')) };
    case 'connected':
      return { type, clientId: text(obj, 'clientId'), lastLSN: lsn(obj, 'lastLSN') };
    case 'disconnected':
      return { type, code: finite(obj, 'code'), reason: text(obj, 'reason'), willReconnect: bool(obj, 'willReconnect') };
    case 'reconnecting':
      return { type, attempt: count(obj, 'attempt'), delay: finite(obj, 'delay') };
    case 'message':
      return { type, message: record(obj, 'message') };
    case 'error': {
      const invalid = obj.invalid === undefined ? {} : { invalid: list(obj, 'invalid').map(parseInvalid) };
      return { type, ...parseErrorDetail(obj), ...invalid };
    }
    case 'operation_complete':
      return { type, id: nonEmpty(obj, 'id'), ...optional(obj, 'lsn', lsn), ...(obj.settled === true ? { settled: true } : {}) };
    case 'operation_error':
      return { type, id: nonEmpty(obj, 'id'), message: text(obj, 'message'), entities: list(obj, 'entities').map(parseEntityRef) };
    case 'sync_reset':
      return { type, ...optional(obj, 'reason', text) };
    case 'store_reopened':
      return { type };
    case 'sync_started':
      return { type, ...optional(obj, 'lsn', lsn), ...optional(obj, 'total', count) };
    case 'sync_progress':
      return { type, ...parseProgress(obj) };
    case 'sync_completed':
      return { type, lsn: lsn(obj, 'lsn') };
    case 'changes':
      return { type, changes: parseChangeList(obj), ...optional(obj, 'lsn', lsn), ...optional(obj, 'settled', (o, key) => parseIds(o[key])) };
    default:
      fail(`unknown event type ${JSON.stringify(type)?.slice(0, 60)}`);
  }
}
