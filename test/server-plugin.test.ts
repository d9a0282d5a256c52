import { expect } from '@open-wc/testing';
import { executeServerCommand } from '@web/test-runner-commands';
import { compareLSN } from '../src/protocol/lsn.ts';
import { parseServerFrame, type ServerMessage } from '../src/protocol/wire.ts';

interface ServerInfo {
  id: string;
  port: number;
  wsUrl: string;
  httpUrl: string;
}

/** A browser WebSocket whose frames are checked with the protocol parser and read in order. */
class Socket {
  readonly #socket: WebSocket;
  readonly #frames: ServerMessage[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.addEventListener('message', (event) => {
      const parsed = parseServerFrame(event.data);
      if (!parsed.ok) throw new Error(`invalid frame: ${parsed.error}`);
      this.#frames.push(parsed.message);
      this.#wake?.();
    });
    socket.addEventListener('close', () => {
      this.#closed = true;
      this.#wake?.();
    });
  }

  static open(url: string): Promise<Socket> {
    const socket = new WebSocket(url);
    return new Promise((resolve, reject) => {
      socket.addEventListener('open', () => resolve(new Socket(socket)), { once: true });
      socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
  }

  send(message: unknown): void {
    this.#socket.send(JSON.stringify(message));
  }

  close(): void {
    this.#socket.close();
  }

  /** Frames up to and including the first of `type`. */
  async until(type: string, timeout = 5000): Promise<ServerMessage[]> {
    const deadline = performance.now() + timeout;
    const taken: ServerMessage[] = [];
    for (;;) {
      const frame = this.#frames.shift();
      if (frame) {
        taken.push(frame);
        if (frame.type === type) return taken;
        continue;
      }
      if (this.#closed) throw new Error(`socket closed before ${type}`);
      if (performance.now() > deadline) throw new Error(`no ${type} within ${timeout} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }
}

async function post(server: ServerInfo, entityId: string): Promise<string> {
  const response = await fetch(`${server.httpUrl}/api/changes`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ changes: [{ type: 'update', entityType: 'note', entityId, data: { entityId } }] }),
  });
  expect(response.status).to.equal(200);
  return ((await response.json()) as { lsn: string }).lsn;
}

function replayed(frames: readonly ServerMessage[]): string[] {
  return frames.flatMap((frame) => (frame.type === 'changes' ? frame.changes.map((c) => c.entityId) : []));
}

describe('reference server plugin', () => {
  let server: ServerInfo | undefined;

  afterEach(async () => {
    if (server) await executeServerCommand('server-stop', { id: server.id, signal: 'SIGKILL' });
    server = undefined;
  });

  it('starts a server a browser can sync with, and restarts it with its data', async () => {
    server = await executeServerCommand<ServerInfo, { batchSize: number }>('server-start', { batchSize: 1 });
    expect(server.wsUrl).to.equal(`ws://127.0.0.1:${server.port}/api/sync`);
    expect(server.httpUrl).to.equal(`http://127.0.0.1:${server.port}`);
    await post(server, 'a');
    const head = await post(server, 'b');

    const socket = await Socket.open(server.wsUrl);
    socket.send({ type: 'sync', clientId: 'plugin-test', lastLSN: '0/0' });
    const frames = await socket.until('sync_complete');
    expect(frames.map((frame) => frame.type)).to.deep.equal(['sync_start', 'changes', 'changes', 'sync_complete']);
    expect(frames[0]).to.deep.include({ type: 'sync_start', lsn: head, total: 2 });
    expect(replayed(frames)).to.deep.equal(['a', 'b']);
    socket.close();

    const restarted = await executeServerCommand<ServerInfo, { id: string; signal: string }>(
      'server-restart', { id: server.id, signal: 'SIGKILL' },
    );
    expect(restarted.port).to.equal(server.port);
    const again = await Socket.open(restarted.wsUrl);
    again.send({ type: 'sync', clientId: 'plugin-test', lastLSN: '0/0' });
    expect(replayed(await again.until('sync_complete'))).to.deep.equal(['a', 'b']);
    const next = await post(restarted, 'c');
    expect(compareLSN(next, head)).to.be.greaterThan(0);
    const live = await again.until('changes');
    expect(replayed(live)).to.deep.equal(['c']);
    again.close();
  });

  it('stops a server and starts it again on the same port', async () => {
    server = await executeServerCommand<ServerInfo, Record<string, never>>('server-start', {});
    const lsn = await post(server, 'kept');
    await executeServerCommand('server-stop', { id: server.id });
    let refused = false;
    await fetch(`${server.httpUrl}/api/stats`).catch(() => {
      refused = true;
    });
    expect(refused).to.equal(true);
    const again = await executeServerCommand<ServerInfo, { id: string }>('server-start-again', { id: server.id });
    expect(again.port).to.equal(server.port);
    const stats = (await (await fetch(`${again.httpUrl}/api/stats`)).json()) as { lsn: string; records: number };
    expect(stats).to.deep.include({ lsn, records: 1 });
  });
});
