/**
 * Waiting in tests. A test waits for a condition it can name, never for a length of time; the
 * one exception, {@link sleep}, is for behaviour that is itself about time.
 */

const POLL_MS = 20;

/**
 * Waits until `condition` holds; fails with `what` after `timeout` ms. Polls, for conditions no
 * event announces (attributes, IndexedDB reads, the server's HTTP stats).
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeout = 8000): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS)); // the polling interval, not a wait for something
  }
}

/** `promise`, or a rejection naming `what` once `timeout` ms have passed without it settling. */
export function within<T>(promise: Promise<T>, what: string, timeout = 8000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), timeout); // a deadline, not a wait
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Lets `ms` of real time pass. Only where time is the behaviour under test: a timer the code
 * promises (a pause, a backoff) or one that must not fire. Every call says which, on its line.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
