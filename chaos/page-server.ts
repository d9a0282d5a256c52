/**
 * The origin the chaos clients' tabs load from: an empty page that runs chaos/page/client-page.ts,
 * and the built bundle from dist/, whose sync worker script gets the fault injector prepended.
 * The WebSocket goes elsewhere (a proxy in front of a reference server), so this origin holds
 * only IndexedDB, Web Locks and BroadcastChannels.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const HOST = '127.0.0.1';
const TYPES: Record<string, string> = { '.js': 'text/javascript', '.map': 'application/json', '.json': 'application/json' };

const PAGE = '<!doctype html><meta charset="utf-8"><title>sync chaos</title><script type="module" src="/chaos/client-page.js"></script>';

async function bundle(options: { entry?: string; contents?: string; format: 'esm' | 'iife' }): Promise<string> {
  const result = await build({
    ...(options.entry ? { entryPoints: [options.entry] } : { stdin: { contents: options.contents!, resolveDir: join(ROOT, 'chaos/page'), loader: 'ts' } }),
    bundle: true,
    write: false,
    format: options.format,
    target: 'es2022',
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

export class PageServer {
  readonly #server: Server;
  /** The injector as a classic script: for the page (before its scripts) and the worker. */
  readonly injector: string;
  readonly #page: string;
  port = 0;

  private constructor(injector: string, page: string) {
    this.injector = injector;
    this.#page = page;
    this.#server = createServer((request, response) => {
      this.#answer(request.url ?? '/').then(
        ({ status, type, body }) => {
          response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
          response.end(body);
        },
        (error: unknown) => {
          response.writeHead(500, { 'content-type': 'text/plain' });
          response.end(String(error));
        },
      );
    });
  }

  static async start(): Promise<PageServer> {
    const built = await readdir(DIST).catch(() => [] as string[]);
    if (!built.includes('sync-connection.js') || !built.some((name) => /^sync-worker-[\w-]+\.js$/.test(name))) {
      throw new Error('dist/ holds no built bundle: run `npm run build` first (`npm run chaos` does)');
    }
    const injector = await bundle({ contents: "import { installFaultInjector } from './fault-injector.ts';\ninstallFaultInjector(globalThis);\n", format: 'iife' });
    const page = await bundle({ entry: join(ROOT, 'chaos/page/client-page.ts'), format: 'esm' });
    const server = new PageServer(injector, page);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(0, HOST, () => resolve());
    });
    const address = server.#server.address();
    if (address === null || typeof address === 'string') throw new Error('the page server has no TCP port');
    server.port = address.port;
    return server;
  }

  get url(): string {
    return `http://${HOST}:${this.port}/`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #answer(url: string): Promise<{ status: number; type: string; body: string | Buffer }> {
    const path = new URL(url, 'http://page').pathname;
    if (path === '/') return { status: 200, type: 'text/html', body: PAGE };
    if (path === '/chaos/client-page.js') return { status: 200, type: 'text/javascript', body: this.#page };
    if (path === '/favicon.ico') return { status: 204, type: 'text/plain', body: '' };
    if (!path.startsWith('/dist/')) return { status: 404, type: 'text/plain', body: 'not found' };
    const file = normalize(join(DIST, path.slice('/dist/'.length)));
    if (!file.startsWith(DIST + '/')) return { status: 404, type: 'text/plain', body: 'not found' };
    const body = await readFile(file).catch(() => undefined);
    if (!body) return { status: 404, type: 'text/plain', body: 'not found' };
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    // The worker's script: the injector first, so its transactions can be aborted and it can crash.
    if (/^sync-worker-[\w-]+\.js$/.test(file.slice(DIST.length + 1))) return { status: 200, type, body: `${this.injector}\n${body.toString()}` };
    return { status: 200, type, body };
  }
}
