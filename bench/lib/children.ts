/**
 * Child processes of the benchmarks: Node on this repository with its open-file limit raised,
 * read through JSON lines, and ended for sure. Nothing here asserts a time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FILE_LIMIT = 65_536;

/** A Node child on this repository with `ulimit -n` raised first (we may run as root). */
export function spawnNode(args: string[], live: Set<ChildProcess>, quiet = false): ChildProcess {
  const script = `ulimit -n ${FILE_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const child = spawn('bash', ['-c', script, 'bash', process.execPath, '--import', 'tsx', ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', quiet ? 'ignore' : 'inherit'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Reads the child's JSON lines; `next(event)` resolves with the next line of that event. */
export function jsonLines(child: ChildProcess): (event: string, timeoutMs: number) => Promise<Record<string, unknown>> {
  const seen: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      const value = JSON.parse(line) as Record<string, unknown>;
      if (value && typeof value === 'object') seen.push(value);
    } catch {
      return;
    }
    for (const wake of waiters.splice(0)) wake();
  });
  let exited = false;
  child.once('exit', () => {
    exited = true;
    for (const wake of waiters.splice(0)) wake();
  });
  return async (event, timeoutMs) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = seen.findIndex((value) => value.event === event);
      if (index >= 0) return seen.splice(index, 1)[0]!;
      if (exited) throw new Error(`child exited before "${event}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${event}" from the child within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };
}

/** Ends a child: closes its stdin, then SIGTERM, then SIGKILL if it is still there after 5 s. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin?.end();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

