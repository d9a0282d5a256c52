/**
 * The server benchmark's floor: no WebSocket library at all. It answers the opening handshake on
 * 127.0.0.1, ignores what clients send, and on `POST /api/changes` builds one text frame (header
 * and payload) and writes it to every socket with one call each: what any server on this machine
 * pays at least to hand one frame to each of its clients (the frame is built as the reference
 * server builds it). Prints `{"event":"listening","port":N}` like the reference server. Exits
 * when stdin ends.
 *
 *   node --import tsx bench/lib/ws-clients-floor-server.ts
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { SharedFrame } from '../../server/outbound.ts';
import { changesEndpoint } from './changes-endpoint.ts';

const ACCEPT_SUFFIX = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const sockets = new Set<Socket>();

const http = createServer(changesEndpoint((changes) => {
  const frame = new SharedFrame(JSON.stringify({ type: 'changes', changes })).framed;
  for (const socket of sockets) socket.write(frame);
}));
http.on('upgrade', (request, socket: Socket) => {
  const key = request.headers['sec-websocket-key'];
  if (typeof key !== 'string') {
    socket.destroy();
    return;
  }
  const accept = createHash('sha1').update(key + ACCEPT_SUFFIX).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.setNoDelay(true);
  sockets.add(socket);
  socket.on('data', () => {});
  socket.on('error', () => {});
  socket.on('close', () => sockets.delete(socket));
});
http.maxConnections = Infinity;
http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: 'listening', port, url: `http://127.0.0.1:${port}` })}\n`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
