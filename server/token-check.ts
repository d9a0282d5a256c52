import { createHash, timingSafeEqual } from 'node:crypto';
import { EVERYONE, type Authenticate } from './identity.ts';

/**
 * An {@link Authenticate} hook that accepts exactly `expected`, compared in constant time, as the
 * one identity `''` with every scope.
 */
export function requireToken(expected: string): Authenticate {
  const want = digest(expected);
  return (token) => (token !== undefined && timingSafeEqual(digest(token), want) ? EVERYONE : null);
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
