import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const REQUIRED = ['initdb', 'pg_ctl', 'postgres'];

function complete(dir) {
  return REQUIRED.every((name) => existsSync(join(dir, name)));
}

/**
 * The directory holding PostgreSQL's server binaries (initdb, pg_ctl, postgres): `PG_BIN`, else
 * Debian's newest /usr/lib/postgresql/N/bin, else what `pg_config --bindir` says. Undefined when
 * none is complete.
 */
export function findPostgresBin() {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) return complete(fromEnv) ? fromEnv : undefined;
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) {
      const dir = join(debian, version, 'bin');
      if (complete(dir)) return dir;
    }
  }
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dir && complete(dir)) return dir;
  } catch {
    // no pg_config on the PATH
  }
  return undefined;
}
