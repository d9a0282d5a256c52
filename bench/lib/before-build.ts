/**
 * The element as built before the client-speed work (#15), for the cost benchmark's "before":
 * `BENCH_BEFORE` names a checkout of that commit with `npm run build` done; without it, the
 * commit is exported (git archive) to a directory under the system's temporary directory and
 * its bundle built there once with this checkout's packages (its package.json is the same).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** main before the client-speed work: the merge of `auth`. */
export const BEFORE_COMMIT = '884852b';

const repository = resolve(new URL('../..', import.meta.url).pathname);

/** The `dist` directory of the build before #15, holding `sync-connection.js` and its worker chunk. */
export async function beforeDist(): Promise<string> {
  const given = process.env.BENCH_BEFORE;
  if (given) {
    const dist = join(resolve(given), 'dist');
    if (!existsSync(join(dist, 'sync-connection.js'))) throw new Error(`BENCH_BEFORE=${given}: no dist/sync-connection.js there (run npm run build in it)`);
    return dist;
  }
  const dir = join(tmpdir(), `sync-connection-${BEFORE_COMMIT}`);
  const dist = join(dir, 'dist');
  if (existsSync(join(dist, 'sync-connection.js'))) return dist;
  process.stderr.write(`  building ${BEFORE_COMMIT} in ${dir}\n`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const archive = join(dir, 'source.tar');
  await run('git', ['-C', repository, 'archive', '--format=tar', '-o', archive, BEFORE_COMMIT]);
  await run('tar', ['-xf', archive, '-C', dir]);
  await rm(archive);
  await symlink(join(repository, 'node_modules'), join(dir, 'node_modules'));
  await run(process.execPath, [join(repository, 'node_modules', 'rollup', 'dist', 'bin', 'rollup'), '-c'], { cwd: dir });
  return dist;
}
