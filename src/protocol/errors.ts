/**
 * The errors of the client, and how they cross a boundary (worker to page, tab to tab) as plain
 * data and come back as the same class with the same `code`.
 */
import type { SyncErrorCode } from './state.ts';

/** What to say of something thrown: its message, or itself as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Something thrown, as an `Error`: itself, or an `Error` saying it. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(errorMessage(error));
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

/** An IndexedDB read or write failed; the store is unchanged. */
export class StorageError extends Error {
  override name = 'StorageError';
}

/** A request that cannot be served in the worker's current state (e.g. not connected). */
export class InvalidStateError extends Error {
  override name = 'InvalidStateError';
}

/** A request from the page that does not have the expected shape. */
export class RequestError extends Error {
  override name = 'RequestError';
}

/** An error as plain data. `code` is a `SyncError`'s, `operationId` an `OperationRejectedError`'s. */
export interface SerializedError {
  name: string;
  message: string;
  code?: SyncErrorCode;
  operationId?: string;
}

const SYNC_ERROR_CODE_SET: Record<SyncErrorCode, true> = {
  invalid_url: true, protocol: true, invalid_change: true, storage: true, worker: true, server: true,
  closed: true, operation: true, observer: true,
};

/** Every code an `error` event can carry; a record above, so that the compiler notices one missing. */
export const SYNC_ERROR_CODES: readonly SyncErrorCode[] = Object.freeze(Object.keys(SYNC_ERROR_CODE_SET) as SyncErrorCode[]);

function isSyncErrorCode(value: unknown): value is SyncErrorCode {
  return typeof value === 'string' && Object.hasOwn(SYNC_ERROR_CODE_SET, value);
}

/** How an error crosses a boundary. Anything thrown that is not an `Error` becomes one. */
export function serializeError(error: unknown): SerializedError {
  // DOMException (what IndexedDB throws) is an Error in every current browser.
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const serialized: SerializedError = { name: error.name, message: error.message };
  if (error instanceof SyncError) serialized.code = error.code;
  if (error instanceof OperationRejectedError) serialized.operationId = error.operationId;
  return serialized;
}

/** A `SerializedError` from untrusted data, or `undefined` when it is not one. */
export function parseSerializedError(value: unknown): SerializedError | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { name, message, code, operationId } = value as Record<string, unknown>;
  if (typeof name !== 'string' || typeof message !== 'string') return undefined;
  if (code !== undefined && !isSyncErrorCode(code)) return undefined;
  if (operationId !== undefined && typeof operationId !== 'string') return undefined;
  return {
    name,
    message,
    ...(code === undefined ? {} : { code }),
    ...(operationId === undefined ? {} : { operationId }),
  };
}

/**
 * Rebuilds a serialised error as the class it was, with its `code`; a `SyncError` that lost its
 * code counts as a `worker` one. An error of another class (a `DOMException`'s name) comes back
 * as an `Error` with that name.
 */
export function reviveError(error: SerializedError): Error {
  switch (error.name) {
    case 'SyncError':
      return new SyncError(error.code ?? 'worker', error.message);
    case 'OperationRejectedError':
      return new OperationRejectedError(error.operationId ?? '', error.message);
    case 'StorageError':
      return new StorageError(error.message);
    case 'InvalidStateError':
      return new InvalidStateError(error.message);
    case 'RequestError':
      return new RequestError(error.message);
    default: {
      const revived = new Error(error.message);
      revived.name = error.name;
      return revived;
    }
  }
}
