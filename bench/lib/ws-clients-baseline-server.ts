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
import { changesEndpoint } from './changes-endpoint.ts';

const http = createServer(changesEndpoint((changes) => {
  const frame = Buffer.from(JSON.stringify({ type: 'changes', changes }), 'utf8');
  for (const socket of wss.clients) {
    if (socket.readyState === socket.OPEN) socket.send(frame, { binary: false });
  }
}));
const wss = new WebSocketServer({ server: http, path: '/api/sync' });
wss.on('connection', (socket) => socket.on('error', () => {}));
http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', port, url: `http://127.0.0.1:${port}` })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
