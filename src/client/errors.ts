import type { SyncErrorCode } from '../protocol/state.ts';
import type { SerializedError } from '../protocol/worker-messages.ts';

/** What to say of something thrown: its message, or itself as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An error with one of the codes of the element's `error` event. */
export class SyncError extends Error {
  override name = 'SyncError';
  readonly code: SyncErrorCode;

  constructor(code: SyncErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The server rejected an operation for good (`operation_error`). */
export class OperationRejectedError extends Error {
  override name = 'OperationRejectedError';
  readonly operationId: string;

  constructor(operationId: string, message: string) {
    super(message);
    this.operationId = operationId;
  }
}

/** Rebuilds an error that crossed the worker boundary as `{ name, message }`. */
export function reviveError(error: SerializedError): Error {
  const revived = new Error(error.message);
  revived.name = error.name;
  return revived;
}
