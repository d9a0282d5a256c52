/**
 * Random values and frames for the fuzzers: JSON of every shape, hostile keys, deep nesting,
 * long strings, and text that is not JSON at all. Everything is drawn from a seeded generator.
 */
import type { Prng } from '../test/helpers/prng.ts';

const KEYS = ['a', 'type', 'id', 'lsn', 'data', 'changes', '__proto__', 'constructor', 'prototype', 'toString', '', ' ', '0', 'ü', '\ud83d\ude00'];
const STRINGS = ['', 'x', '0/0', '0/1', 'FFFFFFFF/FFFFFFFF', '1/0/0', 'G/1', '-1/0', 'null', '\u0000', '\ud800', '<script>', '../../etc/passwd', 'ünïcødé', '\ud83d\ude00'];

/** A JSON value (as a JS value) up to `depth` levels deep. */
export function randomValue(rng: Prng, depth = 3): unknown {
  const kind = rng.int(0, depth > 0 ? 9 : 6);
  switch (kind) {
    case 0: return null;
    case 1: return rng.chance(0.5);
    case 2: return rng.pick([0, -1, 1, 1.5, 2 ** 53, -(2 ** 53), 1e308, -0]);
    case 3: return rng.pick(STRINGS);
    case 4: return rng.string(rng.int(0, 40));
    case 5: return rng.int(-1000, 1000);
    case 6: return rng.string(rng.int(1, 8), '0123456789abcdefABCDEF/');
    case 7: return Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth - 1));
    default: {
      const object: Record<string, unknown> = {};
      for (let i = rng.int(0, 4); i > 0; i--) {
        // Own properties, `__proto__` included, as JSON.parse would make them.
        Object.defineProperty(object, rng.pick(KEYS), { value: randomValue(rng, depth - 1), enumerable: true, writable: true, configurable: true });
      }
      return object;
    }
  }
}

/** Text that is not valid JSON, or is JSON of no protocol shape. */
export function junkText(rng: Prng): string {
  return rng.pick([
    () => rng.string(rng.int(0, 200), 'abc{}[]":,\\ \n\t0123456789'),
    () => '{"type":',
    () => '{"type":"changes","changes":[',
    () => 'null',
    () => '[]',
    () => '"changes"',
    () => String(rng.int(-10, 10)),
    () => '{}',
    () => `{"type":${JSON.stringify(randomValue(rng, 1))}}`,
    () => '\ufeff{"type":"pong"}',
    () => `${'['.repeat(rng.int(100, 5000))}${']'.repeat(rng.int(0, 5000))}`,
    () => '{"a":1,"a":2,"type":"pong","type":"sync_complete"}',
  ])();
}

/** JSON text of an array nested `depth` levels deep (built as text: too deep for JSON.stringify). */
export function deepArray(depth: number): string {
  return `${'['.repeat(depth)}1${']'.repeat(depth)}`;
}

/** A frame built of `members` over `type`, each member kept, changed to another value, or dropped. */
export function mutate(rng: Prng, frame: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(frame)) {
    if (key !== 'type' && rng.chance(0.15)) continue;
    copy[key] = key !== 'type' && rng.chance(0.2) ? randomValue(rng, 2) : value;
  }
  if (rng.chance(0.1)) Object.defineProperty(copy, rng.pick(KEYS), { value: randomValue(rng, 2), enumerable: true, writable: true, configurable: true });
  return copy;
}
