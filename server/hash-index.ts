/**
 * A multimap from 53-bit hashes to numbers (file offsets) in two typed arrays, open addressing
 * with linear probing: about 32 bytes per entry however long the hashed keys are. Hashes collide,
 * so a lookup gives every value stored under a hash and the caller checks which one is its key.
 */
export class HashIndex {
  #hashes: Float64Array;
  #values: Float64Array;
  #size = 0;

  constructor(capacity = 1024) {
    const slots = 2 ** Math.ceil(Math.log2(Math.max(16, capacity * 2)));
    this.#hashes = new Float64Array(slots);
    this.#values = new Float64Array(slots);
  }

  get size(): number {
    return this.#size;
  }

  /** Every value stored under `hash`. */
  get(hash: number): number[] {
    const found: number[] = [];
    const mask = this.#hashes.length - 1;
    for (let slot = hash & mask; this.#hashes[slot] !== EMPTY; slot = (slot + 1) & mask) {
      if (this.#hashes[slot] === hash) found.push(this.#values[slot]!);
    }
    return found;
  }

  add(hash: number, value: number): void {
    if ((this.#size + 1) * 2 > this.#hashes.length) this.#grow();
    this.#place(hash, value);
    this.#size += 1;
  }

  /** Removes one entry (`hash`, `value`); false when there is none. */
  delete(hash: number, value: number): boolean {
    const mask = this.#hashes.length - 1;
    let slot = hash & mask;
    for (; this.#hashes[slot] !== EMPTY; slot = (slot + 1) & mask) {
      if (this.#hashes[slot] === hash && this.#values[slot] === value) break;
    }
    if (this.#hashes[slot] === EMPTY) return false;
    // Backward shift: move later entries of the probe run into the hole where they belong.
    let hole = slot;
    for (let next = (hole + 1) & mask; this.#hashes[next] !== EMPTY; next = (next + 1) & mask) {
      const home = this.#hashes[next]! & mask;
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        this.#hashes[hole] = this.#hashes[next]!;
        this.#values[hole] = this.#values[next]!;
        hole = next;
      }
    }
    this.#hashes[hole] = EMPTY;
    this.#size -= 1;
    return true;
  }

  /** Bytes the two arrays take. */
  get bytes(): number {
    return this.#hashes.byteLength + this.#values.byteLength;
  }

  #place(hash: number, value: number): void {
    const mask = this.#hashes.length - 1;
    let slot = hash & mask;
    while (this.#hashes[slot] !== EMPTY) slot = (slot + 1) & mask;
    this.#hashes[slot] = hash;
    this.#values[slot] = value;
  }

  #grow(): void {
    const hashes = this.#hashes;
    const values = this.#values;
    this.#hashes = new Float64Array(hashes.length * 2);
    this.#values = new Float64Array(values.length * 2);
    for (let slot = 0; slot < hashes.length; slot += 1) {
      if (hashes[slot] !== EMPTY) this.#place(hashes[slot]!, values[slot]!);
    }
  }
}

/** 0 marks a free slot: `hashText` never returns it. */
const EMPTY = 0;

/**
 * A 53-bit hash of `text`, never 0: two 32-bit multiply-xorshift lanes seeded per process, so
 * nobody can choose keys that all land on one hash.
 */
export function hashText(text: string): number {
  let a = SEED_A;
  let b = SEED_B;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    a = Math.imul(a ^ code, 0x9e3779b1);
    b = Math.imul(b ^ code, 0x85ebca77);
  }
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d) ^ Math.imul(b ^ (b >>> 13), 0xc2b2ae35);
  b = Math.imul(b ^ (b >>> 16), 0x846ca68b) ^ Math.imul(a ^ (a >>> 15), 0x27d4eb2f);
  const hash = 2 ** 32 * (b & 0x1fffff) + (a >>> 0);
  return hash === EMPTY ? 1 : hash;
}

const SEED_A = (Math.random() * 2 ** 32) >>> 0;
const SEED_B = (Math.random() * 2 ** 32) >>> 0;
