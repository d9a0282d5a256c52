import type { OperationInput, QueuedOperation } from '../protocol/state.ts';
import { errorMessage, SyncError } from '../protocol/errors.ts';

/** Default upper bound of one operation's frame, in bytes of UTF-8 JSON. */
export const DEFAULT_MAX_OPERATION_BYTES = 1024 * 1024;

let lastSeq = 0;

/** Increasing across calls, and across reloads because it starts from the clock. */
function nextSeq(): number {
  lastSeq = Math.max(lastSeq + 1, Date.now() * 1000);
  return lastSeq;
}

/**
 * Checks what a page passed to `queueOperation` and turns it into the record the outbox keeps.
 * Throws a `SyncError` (code `operation`) that says what is wrong; nothing is stored then.
 */
export function toQueuedOperation(
  input: unknown,
  maxBytes: number = DEFAULT_MAX_OPERATION_BYTES,
): QueuedOperation {
  if (typeof input !== 'object' || input === null) {
    throw invalid('an operation must be an object like { type, payload }');
  }
  const { type, payload, id, priority } = input as Partial<Record<keyof OperationInput, unknown>>;
  if (typeof type !== 'string' || type === '') {
    throw invalid('an operation needs a non-empty string "type"');
  }
  if (id !== undefined && (typeof id !== 'string' || id === '')) {
    throw invalid('"id" must be a non-empty string when given');
  }
  if (priority !== undefined && (typeof priority !== 'number' || !Number.isFinite(priority))) {
    throw invalid('"priority" must be a finite number when given');
  }
  if (type === 'send_message' && (typeof payload !== 'object' || payload === null || Array.isArray(payload))) {
    throw invalid('a send_message payload must be a JSON object: it is sent as the frame itself');
  }
  const operation: QueuedOperation = {
    id: id ?? crypto.randomUUID(),
    type,
    payload: payload ?? null,
    priority: priority ?? 0,
    seq: nextSeq(),
    queuedAt: Date.now(),
  };
  const frame = frameText(operation);
  try {
    structuredClone(operation.payload);
  } catch (cause) {
    throw invalid('the payload cannot be stored (structured clone failed)', cause);
  }
  const bytes = new TextEncoder().encode(frame).length;
  if (bytes > maxBytes) {
    throw invalid(`the operation is ${bytes} bytes as JSON, over the limit of ${maxBytes}`);
  }
  return operation;
}

function frameText(operation: QueuedOperation): string {
  const frame = operation.type === 'send_message'
    ? operation.payload
    : { type: 'operation', operation: { id: operation.id, type: operation.type, payload: operation.payload } };
  let text: string | undefined;
  try {
    text = JSON.stringify(frame, rejectLossy);
  } catch (cause) {
    throw invalid(`the payload cannot be sent as JSON: ${errorMessage(cause)}`, cause);
  }
  if (text === undefined) throw invalid('the payload cannot be sent as JSON');
  return text;
}

/** JSON.stringify drops functions and undefined silently and loses bigint; refuse them instead. */
function rejectLossy(key: string, value: unknown): unknown {
  const kind = typeof value;
  if (kind === 'function' || kind === 'symbol' || kind === 'bigint') {
    throw new TypeError(`${key ? `"${key}"` : 'the value'} is a ${kind}`);
  }
  if (kind === 'number' && !Number.isFinite(value as number)) {
    throw new TypeError(`${key ? `"${key}"` : 'the value'} is ${String(value)}`);
  }
  return value;
}

function invalid(message: string, cause?: unknown): SyncError {
  return new SyncError('operation', `Invalid operation: ${message}`, cause === undefined ? undefined : { cause });
}
