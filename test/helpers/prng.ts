/**
 * A small seeded pseudo-random generator (mulberry32) for reproducible fault and fuzz tests:
 * the same seed gives the same sequence on every run and every machine. Print the seed a test
 * used, so that a failure can be replayed by passing it back.
 */
export class Prng {
  readonly seed: number;
  #state: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#state = this.seed;
  }

  /** A float in [0, 1). */
  next(): number {
    // mulberry32 (Tommy Ettinger): 32 bits of state, full period, good enough for tests.
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max] (both included). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty array');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** One of `choices`, each with its weight (the weights need not sum to 1). */
  weighted<T>(choices: readonly (readonly [weight: number, value: T])[]): T {
    const total = choices.reduce((sum, [weight]) => sum + weight, 0);
    let r = this.next() * total;
    for (const [weight, value] of choices) {
      r -= weight;
      if (r < 0) return value;
    }
    return choices.at(-1)![1];
  }

  /** A string of `length` characters drawn from `alphabet`. */
  string(length: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    let text = '';
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(this.next() * alphabet.length)];
    return text;
  }

  /** A new array with the items in a random order (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const copy = [...items];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy;
  }
}

/**
 * The seed for a test: `?seed=N` in the page's URL or `globalThis.FUZZ_SEED` when set (to replay a
 * failure), else `fallback`, so that runs are deterministic by default.
 */
export function testSeed(fallback: number): number {
  const fromGlobal = (globalThis as { FUZZ_SEED?: unknown }).FUZZ_SEED;
  if (typeof fromGlobal === 'number' && Number.isInteger(fromGlobal)) return fromGlobal >>> 0;
  const fromUrl = typeof location === 'undefined' ? null : new URLSearchParams(location.search).get('seed');
  if (fromUrl !== null && /^\d+$/.test(fromUrl)) return Number(fromUrl) >>> 0;
  return fallback >>> 0;
}
