import type { WebSocket, WebSocketServer } from 'ws';

/**
 * Every `interval` ms, terminates the sockets that sent nothing (no frame, no pong) since the last
 * round and pings the rest with a protocol-level ping, which browsers answer on their own.
 * Returns a function that stops it.
 */
export function startHeartbeat(server: WebSocketServer, interval: number): () => void {
  const heard = new WeakSet<WebSocket>();
  const onConnection = (socket: WebSocket) => {
    heard.add(socket);
    const alive = () => heard.add(socket);
    socket.on('pong', alive);
    socket.on('message', alive);
  };
  server.on('connection', onConnection);
  const timer = setInterval(() => {
    for (const socket of server.clients) {
      if (!heard.has(socket)) {
        socket.terminate();
        continue;
      }
      heard.delete(socket);
      socket.ping();
    }
  }, interval);
  timer.unref();
  return () => {
    clearInterval(timer);
    server.off('connection', onConnection);
  };
}
