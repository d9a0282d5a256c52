import type { ServerResponse } from 'node:http';

/** An answer other than 200, with the message the client gets as `{ "error": ... }`. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

export const JSON_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
};

export function sendJson(response: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(value);
  response.writeHead(status, { ...JSON_HEADERS, 'Content-Length': String(Buffer.byteLength(body)), ...headers });
  response.end(body);
}
