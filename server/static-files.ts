import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** The folders under the root whose files are served: what the demo and the benchmarks load. */
const SERVED_FOLDERS: ReadonlySet<string> = new Set(['dist', 'bench', 'examples']);

export interface StaticOptions {
  /** Directories never served, even inside a served folder (the data directory). */
  hidden?: readonly string[];
}

/**
 * Serves a GET or HEAD for `/`, `/index.html` or a file under `/dist/`, `/bench/` or `/examples/`
 * of `root` (a path ending in `/` means the `index.html` there); everything else is not found, so
 * a root that is a whole repository does not give away its data, `.git`, sources or packages.
 * Never served either: a dotfile or anything in a dot-directory, anything in a `hidden` directory,
 * and a path that leaves the root, also through a symbolic link. Both the path asked for and the
 * real path it resolves to must pass.
 */
export async function serveStatic(
  request: IncomingMessage,
  response: ServerResponse,
  root: string,
  options: StaticOptions = {},
): Promise<void> {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    respond(response, 405, 'method not allowed', { Allow: 'GET, HEAD' });
    return;
  }
  const file = await resolveFile(root, request.url ?? '/', options.hidden ?? []);
  if (!file) {
    respond(response, 404, 'not found');
    return;
  }
  response.writeHead(200, {
    'Content-Type': CONTENT_TYPES[extname(file.path).toLowerCase()] ?? 'application/octet-stream',
    'Content-Length': file.size,
    'Cache-Control': 'no-cache',
  });
  if (request.method === 'HEAD') {
    response.end();
    return;
  }
  const stream = createReadStream(file.path);
  stream.on('error', () => response.destroy());
  stream.pipe(response);
}

async function resolveFile(
  root: string,
  url: string,
  hidden: readonly string[],
): Promise<{ path: string; size: number } | undefined> {
  let pathname: string;
  try {
    pathname = decodeURIComponent(new URL(url, 'http://localhost').pathname);
  } catch {
    return undefined;
  }
  if (pathname.includes('\0')) return undefined;
  const segments = pathname.split('/').filter((segment) => segment.length > 0);
  if (segments.some((segment) => segment === '..' || segment.includes('\\'))) return undefined;
  if (pathname.endsWith('/')) segments.push('index.html');
  if (!servable(segments)) return undefined;
  try {
    const realRoot = await realpath(root);
    const real = await realpath(join(realRoot, ...segments));
    if (real === realRoot || !real.startsWith(realRoot + sep)) return undefined;
    if (!servable(relative(realRoot, real).split(sep))) return undefined;
    for (const dir of hidden) {
      const realDir = await realpath(dir).catch(() => dir);
      if (real === realDir || real.startsWith(realDir + sep)) return undefined;
    }
    const info = await stat(real);
    return info.isFile() ? { path: real, size: info.size } : undefined;
  } catch {
    return undefined;
  }
}

/** True for `index.html` at the root or a path inside a served folder, with no dot-segment. */
function servable(segments: readonly string[]): boolean {
  if (segments.length === 0 || segments.some((segment) => segment.startsWith('.'))) return false;
  if (segments.length === 1) return segments[0] === 'index.html';
  return SERVED_FOLDERS.has(segments[0]!);
}

function respond(
  response: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  response.end(text);
}
