/**
 * A TCP proxy between the browser and one reference server, that can drop every connection at
 * once or partition the network: while partitioned it forwards nothing in either direction (no
 * data, no close) and holds new connections without dialling the server, as a link that
 * black-holes packets would; what was sent meanwhile waits and flows on when the partition heals,
 * as TCP would deliver it after retransmission. The server it forwards to may change (a restarted
 * server on a new port).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

const HOST = '127.0.0.1';

/** One direction of a connection: what waits to be written, and whether the sender finished. */
interface Flow {
  waiting: Buffer[];
  ended: boolean;
}

interface Link {
  client: Socket;
  server?: Socket;
  up: Flow;
  down: Flow;
  /** A side was reset during a partition: the other hears of it when the partition heals. */
  broken?: boolean;
}

export class TcpProxy {
  readonly #server: Server;
  readonly #links = new Set<Link>();
  #target: number;
  #partitioned = false;
  port = 0;

  private constructor(target: number) {
    this.#target = target;
    this.#server = createServer({ allowHalfOpen: true }, (client) => this.#accept(client));
  }

  static async start(target: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, HOST, () => resolve());
    });
    const address = proxy.#server.address();
    if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');
    proxy.port = address.port;
    return proxy;
  }

  get partitioned(): boolean {
    return this.#partitioned;
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#links.size;
  }

  /** Forwards new connections to this port from now on. */
  retarget(port: number): void {
    this.#target = port;
  }

  /** Resets every connection, both ways, as a dropped link would. */
  dropAll(): number {
    const count = this.#links.size;
    for (const link of [...this.#links]) this.#reset(link);
    return count;
  }

  /** Stops forwarding in both directions and holds new connections. */
  partition(): void {
    this.#partitioned = true;
  }

  /** Forwards what waited, and dials the server for the connections held meanwhile. */
  heal(): void {
    if (!this.#partitioned) return;
    this.#partitioned = false;
    for (const link of [...this.#links]) {
      if (link.broken || (link.client.destroyed && !link.server)) this.#reset(link);
      else if (link.server) this.#flushBoth(link);
      else this.#dial(link);
    }
  }

  async close(): Promise<void> {
    for (const link of [...this.#links]) this.#reset(link);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    const link: Link = { client, up: { waiting: [], ended: false }, down: { waiting: [], ended: false } };
    this.#links.add(link);
    client.on('data', (chunk: Buffer) => this.#carry(link, link.up, chunk));
    client.on('end', () => this.#finish(link, link.up));
    client.on('error', () => this.#reset(link));
    client.on('close', () => this.#closed(link));
    if (!this.#partitioned) this.#dial(link);
  }

  #dial(link: Link): void {
    const server = connect({ port: this.#target, host: HOST, allowHalfOpen: true });
    link.server = server;
    server.on('data', (chunk: Buffer) => this.#carry(link, link.down, chunk));
    server.on('end', () => this.#finish(link, link.down));
    server.on('error', () => this.#reset(link));
    server.on('close', () => this.#closed(link));
    server.on('connect', () => this.#flushBoth(link));
  }

  #carry(link: Link, flow: Flow, chunk: Buffer): void {
    flow.waiting.push(chunk);
    this.#flush(link, flow);
  }

  #finish(link: Link, flow: Flow): void {
    flow.ended = true;
    this.#flush(link, flow);
  }

  #flushBoth(link: Link): void {
    this.#flush(link, link.up);
    this.#flush(link, link.down);
  }

  /** Writes what waits in `flow` to its receiver, unless partitioned or not connected yet. */
  #flush(link: Link, flow: Flow): void {
    const receiver = flow === link.up ? link.server : link.client;
    if (this.#partitioned || !receiver || receiver.connecting || receiver.destroyed) return;
    for (const chunk of flow.waiting.splice(0)) receiver.write(chunk);
    if (flow.ended && !receiver.writableEnded) receiver.end();
  }

  /** Forgets a link once both sides are gone (clean ends were passed on by `#flush`). */
  #closed(link: Link): void {
    if (link.client.destroyed && (link.server?.destroyed ?? true)) this.#links.delete(link);
  }

  /**
   * A side failed (or the proxy drops the link): reset both. While partitioned the other side
   * hears nothing until the partition heals.
   */
  #reset(link: Link): void {
    link.up.waiting.length = 0;
    link.down.waiting.length = 0;
    if (this.#partitioned && link.server && !link.server.destroyed && !link.client.destroyed) {
      link.client.resetAndDestroy();
      link.up.ended = true;
      link.broken = true;
      return;
    }
    this.#links.delete(link);
    if (!link.client.destroyed) link.client.resetAndDestroy();
    if (link.server && !link.server.destroyed) link.server.resetAndDestroy();
  }
}
