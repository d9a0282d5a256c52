import type { IncomingMessage, ServerResponse } from 'node:http';
import { isRecord, parseChanges } from '../src/protocol/change.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { editProblem, type InputLimits } from './limits.ts';
import { readJson } from './http-body.ts';
import { sendEntityPage, type SnapshotGate } from './http-entities.ts';
import { corsHeaders, requestIdentity, type AccessPolicy } from './http-access.ts';
import { HttpError, sendJson } from './http-error.ts';
import { ALL_SCOPES, type Authenticate, type Identity } from './identity.ts';
import { authorizeEdits, storeScopes, type WriteRules } from './operation-writer.ts';
import type { MemoryBudget } from './outbound.ts';
import { withTimestamp } from './operations.ts';
import { ScopeRefusal } from './scopes.ts';
import { StoreRefusedError, StoreUnavailableError, type SyncStore } from './sync-store.ts';

export interface ApiContext {
  store: SyncStore;
  /** What decides what a write may do (the same as for operations). */
  rules: WriteRules;
  /** Which pages may read the answers. */
  access: AccessPolicy;
  /** Who a request's bearer token belongs to; none: everyone may do everything. */
  authenticate: Authenticate | undefined;
  /** Request bodies are counted in it while they are read. */
  budget: MemoryBudget;
  maxBodyBytes: number;
  /** True once the server is shutting down: writes are refused. */
  closing(): boolean;
  /** The error that made the store fail for good, if it has: writes are refused. */
  storeFailure(): Error | undefined;
  limits: InputLimits;
  /** Lets a few entity pages be read at once. */
  snapshots: SnapshotGate;
  /** Ms a response may wait for its client to read before it is dropped. */
  stallTimeout: number;
  /** Counters the server keeps beside the store's. */
  counters(): { operationFramesReceived: number; clients: number; clientsDropped: number; bytesHeld: number };
  now(): number;
}



/**
 * Handles `/api/stats`, `/api/entities` and `/api/changes`; returns false for any other path so
 * the caller can serve it. Every answer is JSON; each request acts as the identity of its bearer
 * token (401 without one that `authenticate` accepts), and only the origins the access policy
 * allows may read it.
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
  for (const [name, value] of Object.entries(corsHeaders(request, context.access))) response.setHeader(name, value);
  try {
    if (request.method === 'OPTIONS') {
      response.writeHead(204).end();
      return true;
    }
    const handler = route[request.method ?? ''];
    if (!handler) throw new HttpError(405, `${request.method} is not allowed on ${pathname}`);
    const identity = await requestIdentity(request, context.authenticate);
    if (identity === undefined) throw new HttpError(401, 'unauthorized: send a token this server accepts as Authorization: Bearer <token>', { 'WWW-Authenticate': 'Bearer' });
    const answer = await handler(request, response, context, identity);
    if (answer !== STREAMED) sendJson(response, 200, answer);
  } catch (error) {
    const status = error instanceof HttpError ? error.status : 500;
    const message = errorMessage(error);
    if (!response.headersSent) sendJson(response, status, { error: message }, error instanceof HttpError ? error.headers : {});
    else response.destroy();
  }
  return true;
}

/** True when a request target (`request.url`) names one of the API's routes. */
export function isApiPath(target: string | undefined): boolean {
  try {
    return Object.hasOwn(ROUTES, new URL(target ?? '/', 'http://localhost').pathname);
  } catch {
    return false;
  }
}

/** What a handler returns when it wrote its answer itself. */
const STREAMED = Symbol('streamed');

type Handler = (request: IncomingMessage, response: ServerResponse, context: ApiContext, identity: Identity) => Promise<unknown>;

const ROUTES: Readonly<Record<string, Readonly<Record<string, Handler>>>> = {
  '/api/stats': {
    GET: async (_request, _response, { store, counters }, identity) => {
      // Counts over every scope: for an identity that may see them all.
      if (!identity.scopes.includes(ALL_SCOPES)) throw new HttpError(403, 'forbidden: the stats are for an identity of every scope');
      return { ...(await store.stats()), ...counters() };
    },
  },
  '/api/entities': {
    GET: async (request, response, { store, snapshots, stallTimeout }, identity) => {
      await sendEntityPage(request, response, store, { gate: snapshots, stallTimeout, identity });
      return STREAMED;
    },
  },
  '/api/changes': {
    POST: async (request, _response, { store, rules, budget, maxBodyBytes, closing, storeFailure, limits, now }, identity) => {
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
      const edits = changes.map((change) => withTimestamp(change, timestamp));
      const refusal = await authorizeEdits(rules, identity, { id: 'http', type: 'http', payload: body }, edits);
      if (refusal !== undefined) throw new HttpError(403, refusal);
      const allowedScopes = storeScopes(rules, identity);
      try {
        const { lsn } = await store.append(edits, undefined, undefined, allowedScopes === undefined ? {} : { allowedScopes });
        return { lsn };
      } catch (error) {
        // Outside the identity's scopes: forbidden, nothing stored.
        if (error instanceof ScopeRefusal) throw new HttpError(403, error.message);
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
