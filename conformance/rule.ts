import type { Kit } from './kit.ts';

/** `warn`: a SHOULD not followed; `skip`: the rule could not be checked against this server. */
export type Status = 'pass' | 'warn' | 'fail' | 'skip';

export interface Verdict {
  status: Status;
  /** Why, in a sentence: what the server did. */
  detail?: string;
}

export interface Rule {
  /** A short name, e.g. `applied-once`. */
  id: string;
  /** What a server must do, in a sentence. */
  title: string;
  /** Where docs/protocol.md says so, e.g. `§6 Ids and repeats`. */
  section: string;
  level: 'MUST' | 'SHOULD';
  /** What must hold before the rule can run: a completed catch-up, or the kit's writes accepted. */
  needs?: 'synced' | 'writable';
  run(kit: Kit): Promise<Verdict>;
}

export const pass = (detail?: string): Verdict => (detail === undefined ? { status: 'pass' } : { status: 'pass', detail });
export const fail = (detail: string): Verdict => ({ status: 'fail', detail });
export const warn = (detail: string): Verdict => ({ status: 'warn', detail });
export const skip = (detail: string): Verdict => ({ status: 'skip', detail });

/** JSON text with object members sorted: equal for values that are equal as JSON, whatever their order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, member: unknown) =>
    typeof member === 'object' && member !== null && !Array.isArray(member)
      ? Object.fromEntries(Object.entries(member).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : member);
}
