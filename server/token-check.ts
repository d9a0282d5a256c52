import { createHash, timingSafeEqual } from 'node:crypto';
import type { Authenticate } from './authenticate.ts';

/** An {@link Authenticate} hook that accepts exactly `expected`, compared in constant time. */
export function requireToken(expected: string): Authenticate {
  const want = digest(expected);
  return (token) => token !== undefined && timingSafeEqual(digest(token), want);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
