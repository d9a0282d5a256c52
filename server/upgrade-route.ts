import { STATUS_CODES, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';

/**
 * Hands the WebSocket upgrades `http` receives for `path` to `wss`. Upgrades for other paths are
 * left to the server's other `upgrade` listeners (an app's own WebSockets); when there is none,
 * they are answered 404 rather than left hanging. Returns a function that stops routing.
 */
export function routeUpgrades(http: HttpServer, path: string, wss: WebSocketServer): () => void {
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(request.url) === path) {
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    } else if (http.listenerCount('upgrade') === 1) {
      refuseUpgrade(socket, 404);
    }
  };
  http.on('upgrade', onUpgrade);
  return () => {
    http.off('upgrade', onUpgrade);
  };
}

/** The path of a request target, or undefined when it is not one. */
function pathOf(target: string | undefined): string | undefined {
  try {
    return new URL(target ?? '/', 'http://localhost').pathname;
  } catch {
    return undefined;
  }
}

function refuseUpgrade(socket: Duplex, status: number): void {
  const text = STATUS_CODES[status] ?? 'Error';
  socket.on('error', () => {});
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}

/** True when `path` can be a WebSocket endpoint's path: absolute, no query or fragment. */
export function isEndpointPath(path: string): boolean {
  return path.startsWith('/') && !/[?#\s]/.test(path);
}
