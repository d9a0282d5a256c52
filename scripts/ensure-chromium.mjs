// Makes sure a Chrome or Chromium is there for the browser tests. Where none is found and we run
// as root with apt, Debian's `chromium` is installed; otherwise one line says what to install.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { findChrome } from './find-chrome.mjs';

if (findChrome()) process.exit(0);

if (process.env.CHROME_PATH) {
  console.error(`CHROME_PATH is set to ${process.env.CHROME_PATH}, which does not exist: fix it or unset it.`);
  process.exit(1);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = existsSync('/usr/bin/apt-get');
if (!isRoot || !hasApt) {
  console.error(
    'No Chrome/Chromium found: install Chromium (Debian: apt-get install chromium) or set CHROME_PATH.',
  );
  process.exit(1);
}
console.log('No Chrome/Chromium found: installing Debian\'s chromium (about a minute)...');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env });
if (!findChrome()) {
  console.error('apt-get installed chromium but no browser binary was found; set CHROME_PATH.');
  process.exit(1);
}
