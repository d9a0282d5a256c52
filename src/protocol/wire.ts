/**
 * The wire protocol (docs/protocol.md): JSON text frames over one WebSocket.
 * Types for both directions and the parsers that turn an untrusted frame into one of them.
 */
import { parseChanges, type Change, type InvalidChange } from './change.ts';
import { isLSN, type LSN } from './lsn.ts';
import { attempt, fail, list, nonEmpty, record, text } from './shape.ts';

// ---- client to server -------------------------------------------------------------------------

export interface SyncMessage {
  type: 'sync';
  clientId: string;
  lastLSN: LSN;
  token?: string;
}

/** An operation as it travels in an `operation` frame. */
export interface WireOperation {
  id: string;
  type: string;
  payload: unknown;
}

export interface OperationMessage {
  type: 'operation';
  operation: WireOperation;
}

export interface PingMessage {
  type: 'ping';
}

export type ClientMessage = SyncMessage | OperationMessage | PingMessage;

// ---- server to client -------------------------------------------------------------------------

export interface SyncRequestMessage {
  type: 'sync_request';
}
export interface SyncStartMessage {
  type: 'sync_start';
  lsn?: LSN;
  total?: number;
}
export interface ChangesMessage {
  type: 'changes';
  changes: Change[];
  lsn: LSN;
  /**
   * Protocol 1.2: the ids of this client's operations whose effects this batch carries. The
   * client takes each as acknowledged at `lsn`, in the same atomic step as the batch.
   */
  operations?: string[];
}
export interface BatchUpdateMessage {
  type: 'batch_update';
  batchId: string;
  data: Change[];
  lsn?: LSN;
}
export interface SyncDataMessage {
  type: 'sync_data';
  data: Change[];
  lsn?: LSN;
}
export interface EntityUpdateMessage {
  type: 'entity_update';
  entityType: string;
  entityId: string;
  data: unknown;
  timestamp?: number;
  lsn?: LSN;
}
export interface EntityDeleteMessage {
  type: 'entity_delete';
  entityType: string;
  entityId: string;
  timestamp?: number;
  lsn?: LSN;
}
export interface SyncCompleteMessage {
  type: 'sync_complete';
  lsn?: LSN;
}
export interface SyncErrorMessage {
  type: 'sync_error';
  message: string;
}
export interface OperationCompleteMessage {
  type: 'operation_complete';
  id: string;
  lsn?: LSN;
}
export interface OperationErrorMessage {
  type: 'operation_error';
  id: string;
  message: string;
  /**
   * Protocol 1.1 (docs/protocol.md): the server could not apply the operation now (its store is
   * down) and nothing was stored; send it again later. Without it, `operation_error` is final.
   */
  retryable?: boolean;
}
export interface PongMessage {
  type: 'pong';
}
/**
 * Protocol 1.1: the server's log does not continue from the client's resume point. The client
 * discards its entities and resume point, keeps its queued operations, and syncs from `0/0`.
 */
export interface ResetMessage {
  type: 'reset';
  reason?: string;
}
export interface ErrorMessage {
  type: 'error';
  message: string;
}
/** A frame with a type the protocol does not define; passed to the page as it came. */
export interface UnknownMessage {
  type: string;
  [key: string]: unknown;
}

export type KnownServerMessage =
  | SyncRequestMessage
  | SyncStartMessage
  | ChangesMessage
  | BatchUpdateMessage
  | SyncDataMessage
  | EntityUpdateMessage
  | EntityDeleteMessage
  | SyncCompleteMessage
  | SyncErrorMessage
  | OperationCompleteMessage
  | OperationErrorMessage
  | PongMessage
  | ResetMessage
  | ErrorMessage;

export type ServerMessage =
  | KnownServerMessage
  | { type: 'unknown'; message: UnknownMessage };

export const SERVER_MESSAGE_TYPES: ReadonlySet<string> = new Set<KnownServerMessage['type']>([
  'sync_request', 'sync_start', 'changes', 'batch_update', 'sync_data', 'entity_update',
  'entity_delete', 'sync_complete', 'sync_error', 'operation_complete', 'operation_error',
  'pong', 'reset', 'error',
]);

// ---- parsing ----------------------------------------------------------------------------------

/** The result of parsing one untrusted frame. */
export type ParseResult<T> =
  | { ok: true; message: T; invalid: InvalidChange[] }
  | { ok: false; error: string };

function decode(frame: unknown): Record<string, unknown> {
  if (typeof frame !== 'string') fail('frame is not text');
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    fail('frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('frame is not a JSON object');
  const obj = value as Record<string, unknown>;
  if (typeof obj.type !== 'string') fail('frame has no string "type"');
  return obj;
}

/** An optional field: absent when missing or `null` (protocol 1.1). */
function optional<T>(obj: Record<string, unknown>, key: string, read: (obj: Record<string, unknown>, key: string) => T): T | undefined {
  return obj[key] === undefined || obj[key] === null ? undefined : read(obj, key);
}

function lsnField(obj: Record<string, unknown>, key: string): LSN {
  const value = obj[key];
  if (!isLSN(value)) fail(`malformed LSN in "${key}": ${JSON.stringify(value)?.slice(0, 40)}`);
  return value;
}

function optionalLSN(obj: Record<string, unknown>, key = 'lsn'): { lsn?: LSN } {
  const lsn = optional(obj, key, lsnField);
  return lsn === undefined ? {} : { lsn };
}

function optionalTimestamp(obj: Record<string, unknown>): { timestamp?: number } {
  const timestamp = optional(obj, 'timestamp', (o, key) => {
    const value = o[key];
    if (typeof value !== 'number' || !Number.isFinite(value)) fail(`"${key}" must be a number`);
    return value;
  });
  return timestamp === undefined ? {} : { timestamp };
}

function parseKnownServer(
  obj: Record<string, unknown>,
): { message: ServerMessage; invalid: InvalidChange[] } {
  const none: InvalidChange[] = [];
  const type = obj.type as string;
  switch (type) {
    case 'sync_request':
    case 'pong':
      return { message: { type }, invalid: none };
    case 'sync_start': {
      const total = optional(obj, 'total', (o, key) => {
        const value = o[key];
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) fail(`"${key}" must be a non-negative integer`);
        return value;
      });
      return { message: { type, ...optionalLSN(obj), ...(total === undefined ? {} : { total }) }, invalid: none };
    }
    case 'changes': {
      const lsn = lsnField(obj, 'lsn');
      const { changes, invalid } = parseChanges(list(obj, 'changes'));
      const operations = optional(obj, 'operations', (o, key) => list(o, key).map((id, index) => {
        if (typeof id !== 'string' || id === '') fail(`"${key}" #${index} must be a non-empty string`);
        return id;
      }));
      return { message: { type, changes, lsn, ...(operations === undefined ? {} : { operations }) }, invalid };
    }
    case 'batch_update': {
      const batchId = optional(obj, 'batchId', text) ?? '';
      const { changes, invalid } = parseChanges(list(obj, 'data'));
      return { message: { type, batchId, data: changes, ...optionalLSN(obj) }, invalid };
    }
    case 'sync_data': {
      const { changes, invalid } = parseChanges(list(obj, 'data'));
      return { message: { type, data: changes, ...optionalLSN(obj) }, invalid };
    }
    case 'entity_update': {
      const entityType = nonEmpty(obj, 'entityType');
      const entityId = nonEmpty(obj, 'entityId');
      if (obj.data === undefined) fail('entity_update without "data"');
      return {
        message: { type, entityType, entityId, data: obj.data, ...optionalTimestamp(obj), ...optionalLSN(obj) },
        invalid: none,
      };
    }
    case 'entity_delete': {
      const entityType = nonEmpty(obj, 'entityType');
      const entityId = nonEmpty(obj, 'entityId');
      return { message: { type, entityType, entityId, ...optionalTimestamp(obj), ...optionalLSN(obj) }, invalid: none };
    }
    case 'sync_complete':
      return { message: { type, ...optionalLSN(obj) }, invalid: none };
    case 'sync_error':
    case 'error':
      return { message: { type, message: text(obj, 'message') }, invalid: none };
    case 'operation_complete':
      return { message: { type, id: nonEmpty(obj, 'id'), ...optionalLSN(obj) }, invalid: none };
    case 'operation_error':
      return {
        message: {
          type, id: nonEmpty(obj, 'id'), message: text(obj, 'message'),
          ...(obj.retryable === true ? { retryable: true } : {}),
        },
        invalid: none,
      };
    case 'reset': {
      // A reason of the wrong shape is dropped, not the reset: a client that ignored it would stay stale.
      const reason = typeof obj.reason === 'string' ? { reason: obj.reason } : {};
      return { message: { type, ...reason }, invalid: none };
    }
    default:
      return { message: { type: 'unknown', message: obj as UnknownMessage }, invalid: none };
  }
}

/**
 * Parses a frame from the server. Batch messages keep their valid changes in order; the invalid
 * items are listed in `invalid`. A frame that is not JSON, has no string `type`, or has a field
 * of the wrong shape (a malformed LSN included) is an error. An optional field that is `null` is
 * read as absent.
 */
export function parseServerFrame(frame: unknown): ParseResult<ServerMessage> {
  const parsed = attempt(() => parseKnownServer(decode(frame)));
  return parsed.ok ? { ok: true, ...parsed.value } : parsed;
}

/** Parses a frame from a client, for servers. Unknown types are an error. */
export function parseClientFrame(frame: unknown): ParseResult<ClientMessage> {
  const parsed = attempt((): ClientMessage => {
    const obj = decode(frame);
    switch (obj.type) {
      case 'sync': {
        const clientId = nonEmpty(obj, 'clientId');
        const lastLSN = optional(obj, 'lastLSN', lsnField) ?? '0/0';
        const token = optional(obj, 'token', text);
        return { type: 'sync', clientId, lastLSN, ...(token === undefined ? {} : { token }) };
      }
      case 'operation': {
        const op = record(obj, 'operation');
        return { type: 'operation', operation: { id: nonEmpty(op, 'id'), type: nonEmpty(op, 'type'), payload: op.payload } };
      }
      case 'ping':
        return { type: 'ping' };
      default:
        return fail(`unknown message type ${JSON.stringify(obj.type).slice(0, 60)}`);
    }
  });
  return parsed.ok ? { ok: true, message: parsed.value, invalid: [] } : parsed;
}
