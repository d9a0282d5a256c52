import type { IncomingMessage, ServerResponse } from 'node:http';
import { isRecord, parseChanges } from '../src/protocol/change.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { editProblem, type InputLimits } from './limits.ts';
import type { MemoryBudget } from './outbound.ts';
import { withTimestamp } from './operations.ts';
import { StoreRefusedError, StoreUnavailableError, type SyncStore } from './sync-store.ts';

export interface ApiContext {
  store: SyncStore;
  /** Request bodies are counted in it while they are read. */
  budget: MemoryBudget;
  maxBodyBytes: number;
  /** True once the server is shutting down: writes are refused. */
  closing(): boolean;
  /** The error that made the store fail for good, if it has: writes are refused. */
  storeFailure(): Error | undefined;
  limits: InputLimits;
  /** Counters the server keeps beside the store's. */
  counters(): { operationFramesReceived: number; clients: number; clientsDropped: number; bytesHeld: number };
  now(): number;
}

const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
  'Access-Control-Allow-Headers': 'Content-Type',
};

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * Handles `/api/stats`, `/api/entities` and `/api/changes`; returns false for any other path so
 * the caller can serve it. Every answer is JSON and may be read from any origin.
 */
export async function handleApi(
  request: IncomingMessage,
  response: ServerResponse,
  context: ApiContext,
): Promise<boolean> {
  let pathname: string;
  try {
    ({ pathname } = new URL(request.url ?? '/', 'http://localhost'));
  } catch {
    // A request target no URL parser accepts (`GET http://[`): the client's fault, not a 500.
    sendJson(response, 400, { error: 'malformed request target' });
    return true;
  }
  const route = ROUTES[pathname];
  if (!route) return false;
  try {
    if (request.method === 'OPTIONS') {
      response.writeHead(204, CORS_HEADERS).end();
      return true;
    }
    const handler = route[request.method ?? ''];
    if (!handler) throw new HttpError(405, `${request.method} is not allowed on ${pathname}`);
    sendJson(response, 200, await handler(request, context));
  } catch (error) {
    const status = error instanceof HttpError ? error.status : 500;
    const message = errorMessage(error);
    if (!response.headersSent) sendJson(response, status, { error: message });
    else response.destroy();
  }
  return true;
}

type Handler = (request: IncomingMessage, context: ApiContext) => Promise<unknown>;

const ROUTES: Readonly<Record<string, Readonly<Record<string, Handler>>>> = {
  '/api/stats': {
    GET: async (_request, { store, counters }) => ({ ...(await store.stats()), ...counters() }),
  },
  '/api/entities': {
    GET: async (_request, { store }) => await store.entities(),
  },
  '/api/changes': {
    POST: async (request, { store, budget, maxBodyBytes, closing, storeFailure, limits, now }) => {
      if (closing()) throw new HttpError(503, 'the server is shutting down');
      const failed = storeFailure();
      if (failed) throw new HttpError(503, `store unavailable: ${failed.message}`);
      const body = await readJson(request, maxBodyBytes, budget);
      if (!isRecord(body) || !Array.isArray(body.changes) || body.changes.length === 0) {
        throw new HttpError(400, 'expected { "changes": [ ...at least one change ] }');
      }
      const { changes, invalid } = parseChanges(body.changes);
      if (invalid.length > 0) {
        const reasons = invalid.slice(0, 5).map(({ index, reason }) => `#${index}: ${reason}`);
        throw new HttpError(400, `invalid changes: ${reasons.join('; ')}`);
      }
      const overLimit = changes.flatMap((change, index) => {
        const problem = editProblem(change, limits);
        return problem === undefined ? [] : [`#${index}: ${problem}`];
      });
      if (overLimit.length > 0) throw new HttpError(400, `changes over a limit: ${overLimit.slice(0, 5).join('; ')}`);
      const timestamp = now();
      try {
        const { lsn } = await store.append(changes.map((change) => withTimestamp(change, timestamp)));
        return { lsn };
      } catch (error) {
        // Something the store can never hold: the request's fault, and repeating it will not help.
        if (error instanceof StoreRefusedError) throw new HttpError(400, error.message);
        // Not durable, so not acknowledged; an unavailable or failed store is a 503 the caller
        // may retry later.
        if (error instanceof StoreUnavailableError || store.failure) {
          throw new HttpError(503, errorMessage(error));
        }
        throw error;
      }
    },
  },
};

/**
 * Reads a JSON body of at most `limit` bytes, counting what it holds in `budget`: a body that
 * does not fit in the server's memory budget is refused with 503 (try again later).
 */
function readJson(request: IncomingMessage, limit: number, budget: MemoryBudget): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let held = 0;
    let received = 0;
    let refused: HttpError | undefined;
    const release = () => {
      budget.free(held);
      held = 0;
      chunks.length = 0;
    };
    const refuse = (error: HttpError) => {
      refused = error;
      release();
      reject(error);
    };
    // A declared length is checked and reserved whole, up front: a body that cannot fit is
    // refused before any of it is held.
    const declared = Number(request.headers['content-length'] ?? Number.NaN);
    if (declared > limit) refuse(new HttpError(413, `body larger than ${limit} bytes`));
    else if (declared > 0 && budget.reserve(declared)) held = declared;
    else if (declared > 0) refuse(new HttpError(503, 'the server is short of memory for request bodies; try again later'));
    request.on('data', (chunk: Buffer) => {
      if (refused) return;
      received += chunk.length;
      // Past a limit the rest is read and dropped, so the answer can still be sent.
      if (received > limit) refuse(new HttpError(413, `body larger than ${limit} bytes`));
      else if (received > held && !budget.reserve(received - held)) refuse(new HttpError(503, 'the server is short of memory for request bodies; try again later'));
      else held = Math.max(held, received);
      if (!refused) chunks.push(chunk);
    });
    request.on('error', (error) => {
      release();
      reject(error);
    });
    request.on('close', release);
    request.on('end', () => {
      if (refused) return;
      const text = Buffer.concat(chunks).toString('utf8');
      release();
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, 'body is not valid JSON'));
      }
    });
  });
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  response.writeHead(status, {
    ...CORS_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  response.end(body);
}
