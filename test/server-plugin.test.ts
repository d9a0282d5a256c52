import { expect } from '@open-wc/testing';
import type { Change } from '../src/protocol/change.ts';
import { compareLSN } from '../src/protocol/lsn.ts';
import { parseServerFrame, type ServerMessage } from '../src/protocol/wire.ts';
import { useReferenceServer } from './helpers/reference-server.ts';
import { within } from './helpers/wait.ts';

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
  until(type: string, timeout = 5000): Promise<ServerMessage[]> {
    const reading = this.#read(type);
    reading.catch(() => undefined); // reported through `within` while it waits; later, to nobody
    return within(reading, `a "${type}" frame`, timeout);
  }

  async #read(type: string): Promise<ServerMessage[]> {
    const taken: ServerMessage[] = [];
    for (;;) {
      const frame = this.#frames.shift();
      if (frame) {
        taken.push(frame);
        if (frame.type === type) return taken;
        continue;
      }
      if (this.#closed) throw new Error(`socket closed before ${type}`);
      await new Promise<void>((resolve) => { this.#wake = resolve; });
      this.#wake = undefined;
    }
  }
}

const note = (entityId: string): Change[] => [{ type: 'update', entityType: 'note', entityId, data: { entityId } }];

function replayed(frames: readonly ServerMessage[]): string[] {
  return frames.flatMap((frame) => (frame.type === 'changes' ? frame.changes.map((c) => c.entityId) : []));
}

describe('reference server plugin', () => {
  // Each test starts it itself: starting is part of what it checks.
  const server = useReferenceServer(null);

  it('starts a server a browser can sync with, and restarts it with its data', async () => {
    await server.start({ batchSize: 1 });
    expect(server.wsUrl).to.equal(`ws://127.0.0.1:${server.port}/api/sync`);
    expect(server.httpUrl).to.equal(`http://127.0.0.1:${server.port}`);
    await server.post(note('a'));
    const head = await server.post(note('b'));

    const socket = await Socket.open(server.wsUrl);
    socket.send({ type: 'sync', clientId: 'plugin-test', lastLSN: '0/0' });
    const frames = await socket.until('sync_complete');
    expect(frames.map((frame) => frame.type)).to.deep.equal(['sync_start', 'changes', 'changes', 'sync_complete']);
    expect(frames[0]).to.deep.include({ type: 'sync_start', lsn: head, total: 2 });
    expect(replayed(frames)).to.deep.equal(['a', 'b']);
    socket.close();

    const port = server.port;
    await server.restart('SIGKILL');
    expect(server.port).to.equal(port);
    const again = await Socket.open(server.wsUrl);
    again.send({ type: 'sync', clientId: 'plugin-test', lastLSN: '0/0' });
    expect(replayed(await again.until('sync_complete'))).to.deep.equal(['a', 'b']);
    const next = await server.post(note('c'));
    expect(compareLSN(next, head)).to.be.greaterThan(0);
    const live = await again.until('changes');
    expect(replayed(live)).to.deep.equal(['c']);
    again.close();
  });

  it('stops a server and starts it again on the same port', async () => {
    await server.start();
    const lsn = await server.post(note('kept'));
    const port = server.port;
    await server.stop();
    let refused = false;
    await server.stats().catch(() => {
      refused = true;
    });
    expect(refused).to.equal(true);
    await server.startAgain();
    expect(server.port).to.equal(port);
    expect(await server.stats()).to.deep.include({ lsn, records: 1 });
  });

  it('removes a server: its port refuses connections and the handle holds no server', async () => {
    await server.start();
    const { httpUrl } = server;
    await server.remove();
    let refused = false;
    await fetch(`${httpUrl}/api/stats`).catch(() => {
      refused = true;
    });
    expect(refused).to.equal(true);
    expect(() => server.wsUrl).to.throw(/No reference server is running here/);
  });
});
