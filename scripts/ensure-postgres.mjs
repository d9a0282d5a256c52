// Makes sure PostgreSQL's server binaries are there for the server tests, which start their own
// throwaway cluster. Where none is found and we run as root with apt, Debian's `postgresql` is
// installed (its cluster is not used: the package's own service is stopped again if it started);
// otherwise one line says what to install.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findPostgresBin } from './find-postgres.mjs';

if (findPostgresBin()) process.exit(0);

if (process.env.PG_BIN) {
  console.error(`PG_BIN is set to ${process.env.PG_BIN}, which lacks initdb, pg_ctl or postgres: fix it or unset it.`);
  process.exit(1);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot || !existsSync('/usr/bin/apt-get')) {
  console.error('No PostgreSQL server found: install it (Debian: apt-get install postgresql) or set PG_BIN to its bin directory.');
  process.exit(1);
}
console.log("No PostgreSQL server found: installing Debian's postgresql (about a minute)...");
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', 'postgresql'], { stdio: 'inherit', env });
// The tests run their own cluster on a free port; the package's default one is not needed.
try {
  execFileSync('service', ['postgresql', 'stop'], { stdio: 'ignore' });
} catch {
  // no init system here, or it was not running
}
if (!findPostgresBin()) {
  console.error('apt-get installed postgresql but initdb/pg_ctl/postgres were not found; set PG_BIN.');
  process.exit(1);
}
