import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, JSON_HEADERS } from './http-error.ts';
import { ALL_SCOPES, type Identity } from './identity.ts';
import { InvalidCursorError, type SyncStore } from './sync-store.ts';

/** Entities in a page when the request names no `limit`: today's small stores fit in one. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 10_000;

/**
 * Lets `concurrent` entity pages be read at once; up to `queued` more wait their turn for up to
 * `waitMs`, and any further request is answered 503 at once.
 */
export class SnapshotGate {
  readonly #concurrent: number;
  readonly #queued: number;
  readonly #waitMs: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(concurrent = 4, queued = 64, waitMs = 10_000) {
    this.#concurrent = concurrent;
    this.#queued = queued;
    this.#waitMs = waitMs;
  }

  /** Waits for a turn; returns the function that ends it. */
  async enter(): Promise<() => void> {
    if (this.#running >= this.#concurrent) {
      if (this.#waiting.length >= this.#queued) throw busy();
      await new Promise<void>((resolve, reject) => {
        const turn = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          this.#waiting.splice(this.#waiting.indexOf(turn), 1);
          reject(busy());
        }, this.#waitMs);
        this.#waiting.push(turn);
      });
    }
    this.#running += 1;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#running -= 1;
      this.#waiting.shift()?.();
    };
  }
}

function busy(): HttpError {
  return new HttpError(503, 'too many entity pages are being read; try again shortly', { 'Retry-After': '1' });
}

/**
 * `GET /api/entities[?limit=N][&after=CURSOR]`: `{ "lsn", "entities": [...], "next"? }`, only the
 * entities in `identity`'s scopes, written
 * entity by entity as the client reads it; `next` is the `after` of the following page. A client
 * that stops reading for `stallTimeout` ms is dropped.
 */
export async function sendEntityPage(
  request: IncomingMessage,
  response: ServerResponse,
  store: SyncStore,
  { gate, stallTimeout, identity }: { gate: SnapshotGate; stallTimeout: number; identity: Identity },
): Promise<void> {
  const query = new URL(request.url ?? '/', 'http://localhost').searchParams;
  const limitText = query.get('limit');
  const limit = limitText === null ? DEFAULT_PAGE_SIZE : Number(limitText);
  if (!/^\d+$/.test(limitText ?? '0') || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new HttpError(400, `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
  }
  const after = query.get('after') ?? undefined;
  if (after !== undefined && (after.length === 0 || after.length > 4096)) throw new HttpError(400, 'after must be a cursor from a page\'s "next"');
  const leave = await gate.enter();
  try {
    const scopes = identity.scopes.includes(ALL_SCOPES) ? {} : { scopes: identity.scopes };
    const page = await store.entities({ limit, ...scopes, ...(after === undefined ? {} : { after }) }).catch((error: unknown) => {
      if (error instanceof InvalidCursorError) throw new HttpError(400, `after: ${error.message}`);
      throw error;
    });
    response.writeHead(200, JSON_HEADERS);
    await write(response, `{"lsn":${JSON.stringify(page.lsn)},"entities":[`, stallTimeout);
    for (const [index, entity] of page.entities.entries()) {
      await write(response, `${index === 0 ? '' : ','}${JSON.stringify(entity)}`, stallTimeout);
    }
    await write(response, `]${page.next === undefined ? '' : `,"next":${JSON.stringify(page.next)}`}}`, stallTimeout);
    response.end();
  } finally {
    leave();
  }
}

/** Writes `chunk`, waiting while the client's buffers are full; a client that stalls is dropped. */
async function write(response: ServerResponse, chunk: string, stallTimeout: number): Promise<void> {
  if (response.destroyed) throw new Error('the client went away');
  if (response.write(chunk)) return;
  let timer: NodeJS.Timeout | undefined;
  // Aborted once one of them wins, so no listener is left behind on the response.
  const settled = new AbortController();
  const { signal } = settled;
  const drained = await Promise.race([
    once(response, 'drain', { signal }).then(() => true, () => false),
    once(response, 'close', { signal }).then(() => false, () => false),
    new Promise<false>((resolve) => {
      timer = setTimeout(resolve, stallTimeout, false);
    }),
  ]);
  settled.abort();
  clearTimeout(timer);
  if (!drained) {
    response.destroy();
    throw new Error('the client stopped reading');
  }
}
