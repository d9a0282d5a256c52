/** Turns an untrusted message from the page into a typed `PageToWorker` request. */
import { isRecord } from '../protocol/change.ts';
import { DEFAULT_CONNECTION_OPTIONS, type QueuedOperation } from '../protocol/state.ts';
import type { PageToWorker, WorkerConfig } from '../protocol/worker-messages.ts';

export type ParsedRequest =
  | { ok: true; request: PageToWorker }
  /** `requestId` is missing when the message cannot be answered at all. */
  | { ok: false; requestId?: number; error: string };

class ShapeError extends Error {}

function fail(message: string): never {
  throw new ShapeError(message);
}

function text(obj: Record<string, unknown>, key: string, fallback?: string): string {
  const value = obj[key];
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string') fail(`"${key}" must be a string`);
  return value;
}

function nonEmpty(obj: Record<string, unknown>, key: string): string {
  const value = text(obj, key);
  if (value.length === 0) fail(`"${key}" must not be empty`);
  return value;
}

function finite(obj: Record<string, unknown>, key: string, fallback: number): number {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`"${key}" must be a finite number`);
  return value;
}

function positive(obj: Record<string, unknown>, key: string, fallback: number): number {
  const value = finite(obj, key, fallback);
  if (value <= 0) fail(`"${key}" must be positive`);
  return value;
}

function bool(obj: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(`"${key}" must be a boolean`);
  return value;
}

function record(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = obj[key];
  if (!isRecord(value)) fail(`"${key}" must be an object`);
  return value;
}

function parseConfig(obj: Record<string, unknown>): WorkerConfig {
  const defaults = DEFAULT_CONNECTION_OPTIONS;
  const token = obj.token === undefined ? {} : { token: text(obj, 'token') };
  return {
    url: text(obj, 'url'),
    clientId: text(obj, 'clientId', ''),
    dbName: nonEmpty(obj, 'dbName'),
    heartbeatInterval: positive(obj, 'heartbeatInterval', defaults.heartbeatInterval),
    backoffInitial: positive(obj, 'backoffInitial', defaults.backoffInitial),
    backoffMax: positive(obj, 'backoffMax', defaults.backoffMax),
    ...token,
    ...(obj.applyOnPage === undefined ? {} : { applyOnPage: bool(obj, 'applyOnPage', false) }),
  };
}

/** Checks an outbox record the page sent. */
export function parseQueuedOperation(value: unknown): QueuedOperation {
  if (!isRecord(value)) fail('operation must be an object');
  return {
    id: nonEmpty(value, 'id'),
    type: nonEmpty(value, 'type'),
    payload: value.payload,
    priority: finite(value, 'priority', 0),
    seq: finite(value, 'seq', 0),
    queuedAt: finite(value, 'queuedAt', 0),
  };
}

function parseBody(obj: Record<string, unknown>, requestId: number): PageToWorker {
  const type = obj.type;
  switch (type) {
    case 'init':
      return { type, requestId, config: parseConfig(record(obj, 'config')) };
    case 'connect':
    case 'force_connect':
    case 'sync':
    case 'get_status':
    case 'clear_operations':
      return { type, requestId };
    case 'disconnect':
      return { type, requestId, graceful: bool(obj, 'graceful', true) };
    case 'send_message':
      return { type, requestId, payload: record(obj, 'payload') };
    case 'operation':
      return { type, requestId, operation: parseQueuedOperation(obj.operation) };
    case 'network':
      return { type, requestId, online: bool(obj, 'online', true) };
    case 'applied': {
      const count = finite(obj, 'count', -1);
      if (!Number.isInteger(count) || count < 0) fail('"count" must be a whole number of batches');
      const error = obj.error === undefined ? {} : { error: text(obj, 'error') };
      return { type, requestId, applyId: nonEmpty(obj, 'applyId'), count, ...error };
    }
    default:
      fail(`unknown request type ${JSON.stringify(type)?.slice(0, 60)}`);
  }
}

export function parseRequest(data: unknown): ParsedRequest {
  if (!isRecord(data)) return { ok: false, error: 'request is not an object' };
  const { requestId } = data;
  if (typeof requestId !== 'number' || !Number.isFinite(requestId)) {
    return { ok: false, error: 'request has no numeric "requestId"' };
  }
  try {
    return { ok: true, request: parseBody(data, requestId) };
  } catch (error) {
    if (error instanceof ShapeError) return { ok: false, requestId, error: error.message };
    throw error;
  }
}
