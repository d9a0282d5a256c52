import type { OperationInput, QueuedOperation } from '../protocol/state.ts';
import { isEntityOperationType, parseEffect, type Effect } from '../protocol/effects.ts';
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
  const { type, payload, id, priority, effects } = input as Partial<Record<keyof OperationInput, unknown>>;
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
  if (isEntityOperationType(type)) {
    const effect = parseEffect(type, payload);
    if (typeof effect === 'string') throw invalid(effect);
    if (effects !== undefined) throw invalid(`a ${type} has its payload's effect and takes no "effects"`);
  }
  const declared = effects === undefined ? undefined : checkEffects(effects);
  const operation: QueuedOperation = {
    id: id ?? crypto.randomUUID(),
    type,
    payload: payload ?? null,
    priority: priority ?? 0,
    seq: nextSeq(),
    queuedAt: Date.now(),
    ...(declared === undefined ? {} : { effects: declared }),
  };
  const frame = frameText(operation);
  if (declared !== undefined) jsonText(declared, 'the effects');
  // A copy: what is stored, sent and shown is the operation as it was at the call, whatever the
  // page does to its objects afterwards.
  try {
    operation.payload = structuredClone(operation.payload);
    if (operation.effects) operation.effects = structuredClone(operation.effects);
  } catch (cause) {
    throw invalid('the payload cannot be stored (structured clone failed)', cause);
  }
  const bytes = new TextEncoder().encode(frame).length;
  if (bytes > maxBytes) {
    throw invalid(`the operation is ${bytes} bytes as JSON, over the limit of ${maxBytes}`);
  }
  return operation;
}

/** The effects a custom operation declares: a list of upsert, patch and delete effects, each naming its entity. */
function checkEffects(effects: unknown): Effect[] {
  if (!Array.isArray(effects)) throw invalid('"effects" must be a list of { type, entityType, entityId, data? }');
  return effects.map((item: unknown, index) => {
    const effect = typeof item === 'object' && item !== null ? parseEffect((item as { type?: unknown }).type, item) : 'an effect must be an object';
    if (typeof effect === 'string') throw invalid(`effect #${index}: ${effect}`);
    return effect;
  });
}

function frameText(operation: QueuedOperation): string {
  const frame = operation.type === 'send_message'
    ? operation.payload
    : { type: 'operation', operation: { id: operation.id, type: operation.type, payload: operation.payload } };
  return jsonText(frame, 'the payload');
}

/** `value` as JSON, refusing what JSON would lose; `what` names it in the error. */
function jsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value, rejectLossy);
  } catch (cause) {
    throw invalid(`${what} cannot be sent as JSON: ${errorMessage(cause)}`, cause);
  }
  if (text === undefined) throw invalid(`${what} cannot be sent as JSON`);
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
