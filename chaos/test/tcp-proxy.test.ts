import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TcpProxy } from '../tcp-proxy.ts';

/** An echo server: what it reads, it writes back. */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined); // the proxy resets it on a drop
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port };
}

async function dial(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined); // the proxy resets it on a drop
  await once(socket, 'connect');
  return socket;
}

/** Resolves with the next `length` bytes the socket reads, as text. */
function read(socket: Socket, length: number): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const take = (chunk: Buffer): void => {
      text += chunk.toString();
      if (text.length >= length) {
        socket.off('data', take);
        resolve(text);
      }
    };
    socket.on('data', take);
  });
}

describe('the chaos run\'s TCP proxy', () => {
  let echo: { server: Server; port: number };
  let proxy: TcpProxy;

  before(async () => {
    echo = await echoServer();
    proxy = await TcpProxy.start(echo.port);
  });

  after(async () => {
    await proxy.close();
    echo.server.close();
  });

  it('forwards both ways', async () => {
    const socket = await dial(proxy.port);
    const answer = read(socket, 5);
    socket.write('hello');
    assert.equal(await answer, 'hello');
    socket.destroy();
  });

  it('delivers nothing while partitioned, and everything once healed, in order', async () => {
    const socket = await dial(proxy.port);
    let received = '';
    socket.on('data', (chunk: Buffer) => { received += chunk.toString(); });
    proxy.partition();
    socket.write('one ');
    socket.write('two');
    // The echo answers within a round trip when the link works: a partition must hold it.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(received, '');
    const answer = read(socket, 'one two'.length);
    proxy.heal();
    assert.equal(await answer, 'one two');
    socket.destroy();
  });

  it('holds a connection opened during a partition and dials the server when it heals', async () => {
    proxy.partition();
    const socket = await dial(proxy.port);
    socket.write('late');
    const answer = read(socket, 4);
    proxy.heal();
    assert.equal(await answer, 'late');
    socket.destroy();
  });

  it('resets every connection on a drop', async () => {
    // The connections of the tests before are gone once both of their sides have closed.
    while (proxy.connections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const socket = await dial(proxy.port);
    while (proxy.connections === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const closed = new Promise((resolve) => socket.once('close', resolve)); // after its ECONNRESET
    assert.equal(proxy.dropAll(), 1);
    await closed;
    assert.equal(proxy.connections, 0);
  });

  it('sends new connections to a server on another port after a retarget', async () => {
    const other = await echoServer();
    proxy.retarget(other.port);
    const socket = await dial(proxy.port);
    const answer = read(socket, 2);
    socket.write('ok');
    assert.equal(await answer, 'ok');
    socket.destroy();
    proxy.retarget(echo.port);
    other.server.close();
  });
});
