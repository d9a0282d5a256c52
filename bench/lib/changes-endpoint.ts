/**
 * The one route the server benchmark's stand-in servers answer: `POST /api/changes` with
 * `{"changes":[...]}` hands the changes to `broadcast`, then answers `{}`; a body that is not
 * JSON gets 400, any other request 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function changesEndpoint(broadcast: (changes: unknown) => void): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    if (request.method !== 'POST' || request.url !== '/api/changes') {
      response.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let changes: unknown;
      try {
        changes = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { changes?: unknown }).changes;
      } catch {
        response.writeHead(400).end();
        return;
      }
      broadcast(changes);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  };
}
