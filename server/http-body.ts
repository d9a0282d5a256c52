import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-error.ts';
import type { MemoryBudget } from './outbound.ts';

/**
 * Reads a JSON body of at most `limit` bytes, counting what it holds in `budget`: a body that
 * does not fit in the server's memory budget is refused with 503 (try again later).
 */
export function readJson(request: IncomingMessage, limit: number, budget: MemoryBudget): Promise<unknown> {
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
