import { tryLock, unlock } from 'fs-native-extensions';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Another process (or another store in this one) has the data directory. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
}

export interface DataDirLock {
  release(): Promise<void>;
}

const LOCK_FILE = 'lock';

/**
 * Takes the exclusive lock on a data directory: an operating system lock on `<dir>/lock`, held
 * while the store is open and dropped by the kernel when the process dies, however it dies (so a
 * crash never leaves a stale lock). Two servers writing one log would hand out the same LSNs for
 * different writes.
 */
export async function lockDataDir(dir: string): Promise<DataDirLock> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const handle = await open(path, 'a+');
  let locked: boolean;
  try {
    locked = tryLock(handle.fd);
  } catch (error) {
    await handle.close();
    throw error;
  }
  if (!locked) {
    const holder = (await readFile(path, 'utf8').catch(() => '')).trim();
    await handle.close();
    throw new DataDirLockedError(
      `the data directory ${dir} is in use by another sync server${/^\d+$/.test(holder) ? ` (process ${holder})` : ''}: ` +
        'two servers on one directory would give different writes the same LSNs. Stop the other one, or give this one its own data directory',
    );
  }
  // Says who holds it, for the message above; the lock itself is the kernel's.
  await handle.truncate(0);
  await handle.write(`${process.pid}\n`);
  return {
    async release() {
      try {
        unlock(handle.fd);
      } finally {
        await handle.close();
      }
    },
  };
}
