/**
 * The wire protocol (docs/protocol.md): JSON text frames over one WebSocket.
 * Types for both directions and the parsers that turn an untrusted frame into one of them.
 */
import { isRecord, parseChanges, type Change, type InvalidChange } from './change.ts';
import { isLSN, type LSN } from './lsn.ts';

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
  | ErrorMessage;

export type ServerMessage =
  | KnownServerMessage
  | { type: 'unknown'; message: UnknownMessage };

export const SERVER_MESSAGE_TYPES: ReadonlySet<string> = new Set<KnownServerMessage['type']>([
  'sync_request', 'sync_start', 'changes', 'batch_update', 'sync_data', 'entity_update',
  'entity_delete', 'sync_complete', 'sync_error', 'operation_complete', 'operation_error',
  'pong', 'error',
]);

// ---- parsing ----------------------------------------------------------------------------------

/** The result of parsing one untrusted frame. */
export type ParseResult<T> =
  | { ok: true; message: T; invalid: InvalidChange[] }
  | { ok: false; error: string };

class FrameError extends Error {}

function fail(message: string): never {
  throw new FrameError(message);
}

function decode(frame: unknown): Record<string, unknown> {
  if (typeof frame !== 'string') fail('frame is not text');
  let value: unknown;
  try {
    value = JSON.parse(frame);
  } catch {
    fail('frame is not valid JSON');
  }
  if (!isRecord(value)) fail('frame is not a JSON object');
  if (typeof value.type !== 'string') fail('frame has no string "type"');
  return value;
}

function string(obj: Record<string, unknown>, key: string): string {
  const value = obj[key];
  if (typeof value !== 'string') fail(`"${key}" must be a string`);
  return value;
}

function nonEmpty(obj: Record<string, unknown>, key: string): string {
  const value = string(obj, key);
  if (value.length === 0) fail(`"${key}" must not be empty`);
  return value;
}

function optionalLSN(obj: Record<string, unknown>, key = 'lsn'): { lsn?: LSN } {
  const value = obj[key];
  if (value === undefined || value === null) return {};
  if (!isLSN(value)) fail(`malformed LSN in "${key}": ${JSON.stringify(value)?.slice(0, 40)}`);
  return { lsn: value };
}

function requiredLSN(obj: Record<string, unknown>, key: string): LSN {
  const value = obj[key];
  if (!isLSN(value)) fail(`malformed LSN in "${key}": ${JSON.stringify(value)?.slice(0, 40)}`);
  return value;
}

function optionalTimestamp(obj: Record<string, unknown>): { timestamp?: number } {
  const value = obj.timestamp;
  if (value === undefined || value === null) return {};
  if (typeof value !== 'number' || !Number.isFinite(value)) fail('"timestamp" must be a number');
  return { timestamp: value };
}

function items(obj: Record<string, unknown>, key: string): unknown[] {
  const value = obj[key];
  if (!Array.isArray(value)) fail(`"${key}" must be an array`);
  return value;
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
      const total = obj.total;
      if (total !== undefined && total !== null &&
          (typeof total !== 'number' || !Number.isInteger(total) || total < 0)) {
        fail('"total" must be a non-negative integer');
      }
      const counted = typeof total === 'number' ? { total } : {};
      return { message: { type, ...optionalLSN(obj), ...counted }, invalid: none };
    }
    case 'changes': {
      const lsn = requiredLSN(obj, 'lsn');
      const { changes, invalid } = parseChanges(items(obj, 'changes'));
      return { message: { type, changes, lsn }, invalid };
    }
    case 'batch_update': {
      const batchId = obj.batchId === undefined ? '' : string(obj, 'batchId');
      const lsn = optionalLSN(obj);
      const { changes, invalid } = parseChanges(items(obj, 'data'));
      return { message: { type, batchId, data: changes, ...lsn }, invalid };
    }
    case 'sync_data': {
      const lsn = optionalLSN(obj);
      const { changes, invalid } = parseChanges(items(obj, 'data'));
      return { message: { type, data: changes, ...lsn }, invalid };
    }
    case 'entity_update': {
      const entityType = nonEmpty(obj, 'entityType');
      const entityId = nonEmpty(obj, 'entityId');
      if (obj.data === undefined) fail('entity_update without "data"');
      return {
        message: {
          type, entityType, entityId, data: obj.data, ...optionalTimestamp(obj), ...optionalLSN(obj),
        },
        invalid: none,
      };
    }
    case 'entity_delete': {
      const entityType = nonEmpty(obj, 'entityType');
      const entityId = nonEmpty(obj, 'entityId');
      return {
        message: { type, entityType, entityId, ...optionalTimestamp(obj), ...optionalLSN(obj) },
        invalid: none,
      };
    }
    case 'sync_complete':
      return { message: { type, ...optionalLSN(obj) }, invalid: none };
    case 'sync_error':
    case 'error':
      return { message: { type, message: string(obj, 'message') }, invalid: none };
    case 'operation_complete':
      return { message: { type, id: nonEmpty(obj, 'id'), ...optionalLSN(obj) }, invalid: none };
    case 'operation_error':
      return {
        message: {
          type, id: nonEmpty(obj, 'id'), message: string(obj, 'message'),
          ...(obj.retryable === true ? { retryable: true } : {}),
        },
        invalid: none,
      };
    default:
      return { message: { type: 'unknown', message: obj as UnknownMessage }, invalid: none };
  }
}

/**
 * Parses a frame from the server. Batch messages keep their valid changes in order; the invalid
 * items are listed in `invalid`. A frame that is not JSON, has no string `type`, or has a field
 * of the wrong shape (a malformed LSN included) is an error.
 */
export function parseServerFrame(frame: unknown): ParseResult<ServerMessage> {
  try {
    const { message, invalid } = parseKnownServer(decode(frame));
    return { ok: true, message, invalid };
  } catch (error) {
    if (error instanceof FrameError) return { ok: false, error: error.message };
    throw error;
  }
}

/** Parses a frame from a client, for servers. Unknown types are an error. */
export function parseClientFrame(frame: unknown): ParseResult<ClientMessage> {
  try {
    const obj = decode(frame);
    const invalid: InvalidChange[] = [];
    switch (obj.type) {
      case 'sync': {
        const clientId = nonEmpty(obj, 'clientId');
        const lastLSN = obj.lastLSN === undefined ? '0/0' : requiredLSN(obj, 'lastLSN');
        const token = obj.token === undefined ? {} : { token: string(obj, 'token') };
        return { ok: true, message: { type: 'sync', clientId, lastLSN, ...token }, invalid };
      }
      case 'operation': {
        const op = obj.operation;
        if (!isRecord(op)) fail('"operation" must be an object');
        const operation: WireOperation = {
          id: nonEmpty(op, 'id'),
          type: nonEmpty(op, 'type'),
          payload: op.payload,
        };
        return { ok: true, message: { type: 'operation', operation }, invalid };
      }
      case 'ping':
        return { ok: true, message: { type: 'ping' }, invalid };
      default:
        fail(`unknown message type ${JSON.stringify(obj.type).slice(0, 60)}`);
    }
  } catch (error) {
    if (error instanceof FrameError) return { ok: false, error: error.message };
    throw error;
  }
}
