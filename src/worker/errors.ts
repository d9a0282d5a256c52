import type { SerializedError } from '../protocol/worker-messages.ts';

/** An IndexedDB read or write failed; the store is unchanged. */
export class StorageError extends Error {
  override readonly name = 'StorageError';
}

/** A request that cannot be served in the worker's current state (e.g. not connected). */
export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/** A request from the page that does not have the expected shape. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** How an error crosses the worker boundary. */
export function serializeError(error: unknown): SerializedError {
  // DOMException (what IndexedDB throws) is an Error in every current browser.
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}
