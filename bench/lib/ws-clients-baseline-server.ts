/**
 * The server benchmark's baseline: the least a server can do to fan a change out. `ws` on
 * 127.0.0.1, no store, no protocol: incoming frames are ignored, and `POST /api/changes` sends
 * `{"type":"changes","changes":[...]}` (serialized and encoded once) to every open socket, then answers.
 * Prints `{"event":"listening","port":N}` like the reference server. Exits when stdin ends.
 *
 *   node --import tsx bench/lib/ws-clients-baseline-server.ts
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

const http = createServer((request, response) => {
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
    const frame = Buffer.from(JSON.stringify({ type: 'changes', changes }), 'utf8');
    for (const socket of wss.clients) {
      if (socket.readyState === socket.OPEN) socket.send(frame, { binary: false });
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
const wss = new WebSocketServer({ server: http, path: '/api/sync' });
wss.on('connection', (socket) => socket.on('error', () => {}));
http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', port, url: `http://127.0.0.1:${port}` })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
