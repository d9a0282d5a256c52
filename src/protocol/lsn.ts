/**
 * Log sequence numbers, written `X/Y` like PostgreSQL's: the high and low 32 bits of one 64-bit
 * position in hexadecimal. They are compared on that 64-bit value, never as strings.
 */

/** An LSN in its text form, `X/Y`. */
export type LSN = string;

export const ZERO_LSN: LSN = '0/0';

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `X/Y` into its 64-bit value, or returns `undefined` when the text is not an LSN. */
export function parseLSN(text: unknown): bigint | undefined {
  if (typeof text !== 'string') return undefined;
  const match = LSN_PATTERN.exec(text);
  if (!match) return undefined;
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** True when `text` is a well-formed LSN. */
export function isLSN(text: unknown): text is LSN {
  return parseLSN(text) !== undefined;
}

/** Formats a 64-bit position as `X/Y` in upper-case hexadecimal without leading zeros. */
export function formatLSN(value: bigint): LSN {
  if (value < 0n || value > 0xffff_ffff_ffff_ffffn) {
    throw new RangeError(`LSN out of range: ${value}`);
  }
  const high = (value >> 32n).toString(16).toUpperCase();
  const low = (value & 0xffff_ffffn).toString(16).toUpperCase();
  return `${high}/${low}`;
}

function toValue(lsn: LSN | bigint): bigint {
  if (typeof lsn === 'bigint') return lsn;
  const value = parseLSN(lsn);
  if (value === undefined) throw new TypeError(`Malformed LSN: ${JSON.stringify(lsn)}`);
  return value;
}

/** Negative when `a` < `b`, zero when equal, positive when `a` > `b`. Throws on a malformed LSN. */
export function compareLSN(a: LSN | bigint, b: LSN | bigint): number {
  if (typeof a === 'string' && typeof b === 'string') {
    // Each half is at most 32 bits, exact as a number: the hot path needs no BigInt.
    const x = LSN_PATTERN.exec(a);
    const y = LSN_PATTERN.exec(b);
    if (!x) throw new TypeError(`Malformed LSN: ${JSON.stringify(a)}`);
    if (!y) throw new TypeError(`Malformed LSN: ${JSON.stringify(b)}`);
    return parseInt(x[1]!, 16) - parseInt(y[1]!, 16) || parseInt(x[2]!, 16) - parseInt(y[2]!, 16);
  }
  const x = toValue(a);
  const y = toValue(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The normalised text of an LSN (`0/16b3748` becomes `0/16B3748`). Throws on a malformed LSN. */
export function normalizeLSN(lsn: LSN): LSN {
  return formatLSN(toValue(lsn));
}
