/** Turns an untrusted message from the page into a typed `PageToWorker` request. */
import { isRecord } from '../protocol/change.ts';
import { parseQueuedOperation } from '../protocol/queued-operation.ts';
import { attempt, bool, fail, finite, nonEmpty, oneOf, positive, record, text } from '../protocol/shape.ts';
import { DEFAULT_CONNECTION_OPTIONS } from '../protocol/state.ts';
import { WAKE_REASONS, type PageToWorker, type WorkerConfig } from '../protocol/worker-messages.ts';

export type ParsedRequest =
  | { ok: true; request: PageToWorker }
  /** `requestId` is missing when the message cannot be answered at all. */
  | { ok: false; requestId?: number; error: string };

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
    case 'visibility':
      return { type, requestId, visible: bool(obj, 'visible') };
    case 'wake':
      return { type, requestId, reason: oneOf(obj, 'reason', WAKE_REASONS) };
    case 'token':
      return obj.token === undefined ? { type, requestId } : { type, requestId, token: text(obj, 'token') };
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
  const parsed = attempt(() => parseBody(data, requestId));
  return parsed.ok ? { ok: true, request: parsed.value } : { ok: false, requestId, error: parsed.error };
}
