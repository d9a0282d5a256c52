/**
 * The checks at the end of the chaos run, once every fault is healed and every client is quiet:
 * how often the server's log applied each operation against what its page was told, and each
 * tab's entities against the server's.
 */
import type { Change } from '../src/protocol/change.ts';
import type { Ledger, LedgerEntry } from './clients.ts';
import type { ServerEntity } from './server-process.ts';

/** Applications of each operation in a log: updates by the `op` their data names, deletes by entity. */
export function countApplications(log: readonly Change[]): { byOperation: Map<string, number>; deletes: Map<string, number> } {
  const byOperation = new Map<string, number>();
  const deletes = new Map<string, number>();
  for (const change of log) {
    if (change.type === 'delete') {
      const key = `${change.entityType}/${change.entityId}`;
      deletes.set(key, (deletes.get(key) ?? 0) + 1);
      continue;
    }
    const op = (change.data as { op?: unknown } | null)?.op;
    if (typeof op === 'string') byOperation.set(op, (byOperation.get(op) ?? 0) + 1);
  }
  return { byOperation, deletes };
}

export interface ApplicationCheck {
  /** How many operations of each fate were applied 0, 1, or more times. */
  table: Map<string, { zero: number; once: number; more: number }>;
  violations: string[];
}

/** What each fate allows: an acknowledged or orphaned operation once, a rejected one never, an unknown one at most once. */
function allowed(entry: LedgerEntry): (count: number) => boolean {
  switch (entry.fate) {
    case 'acknowledged':
    case 'orphaned':
      return (count) => count === 1;
    case 'rejected':
      return (count) => count === 0;
    case 'unknown':
      return (count) => count <= 1;
    case 'in-flight':
      return () => false;
  }
}

/** Says what happened around `at` (the faults then under way), for a violation's message. */
export type Context = (at: number) => string;

export function checkApplications(ledger: Ledger, clients: ReadonlySet<string>, log: readonly Change[], seed: number, context: Context): ApplicationCheck {
  const { byOperation, deletes } = countApplications(log);
  const table = new Map<string, { zero: number; once: number; more: number }>();
  const violations: string[] = [];
  const known = new Set<string>();
  for (const [id, entry] of ledger.entries) {
    if (!clients.has(entry.client)) continue;
    known.add(id);
    const { operation } = entry;
    const count = operation.type === 'delete'
      ? deletes.get(`${operation.entityType}/${operation.entityId}`) ?? 0
      : byOperation.get(id) ?? 0;
    const fate = entry.fate === 'rejected' ? `rejected (${entry.code})` : entry.fate;
    const row = table.get(fate) ?? { zero: 0, once: 0, more: 0 };
    if (count === 0) row.zero += 1;
    else if (count === 1) row.once += 1;
    else row.more += 1;
    table.set(fate, row);
    if (entry.fate === 'in-flight') {
      violations.push(`operation ${id} (${operation.type} ${operation.entityType}/${operation.entityId}): its queueOperation() promise never settled, though no outbox holds it; applied ${count} times; ${context(operation.queuedAt)} (seed ${seed})`);
    } else if (!allowed(entry)(count)) {
      violations.push(`operation ${id} (${operation.type} ${operation.entityType}/${operation.entityId}, ${fate}${entry.message ? `: ${entry.message}` : ''}) was applied ${count} times; ${context(operation.queuedAt)} (seed ${seed})`);
    }
  }
  for (const [op, count] of byOperation) {
    if (!known.has(op)) violations.push(`the log applied ${count} times an operation no page queued: ${op} (seed ${seed})`);
  }
  return { table, violations };
}

export interface Row {
  entityType: string;
  entityId: string;
  data: unknown;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical((value as Record<string, unknown>)[key])]));
}

/** The differences between what a tab reads and what the server holds, at most `limit` of them. */
export function compareEntities(label: string, tab: readonly (Row & { pending: boolean })[], server: readonly ServerEntity[], limit = 5): string[] {
  const key = (row: Row): string => `${row.entityType}/${row.entityId}`;
  const wanted = new Map(server.filter((e) => e.entityType === 'item' || e.entityType === 'shared').map((e) => [key(e), JSON.stringify(canonical(e.data))]));
  const found = new Map(tab.map((e) => [key(e), JSON.stringify(canonical(e.data))]));
  const problems: string[] = [];
  for (const row of tab) if (row.pending) problems.push(`${label}: ${key(row)} is still pending`);
  for (const [k, data] of wanted) {
    const mine = found.get(k);
    if (mine === undefined) problems.push(`${label}: lacks ${k} (the server has ${data.slice(0, 120)})`);
    else if (mine !== data) problems.push(`${label}: ${k} is ${mine.slice(0, 120)}, the server has ${data.slice(0, 120)}`);
  }
  for (const k of found.keys()) if (!wanted.has(k)) problems.push(`${label}: has ${k}, which the server does not`);
  return problems.length > limit ? [...problems.slice(0, limit), `${label}: and ${problems.length - limit} more differences`] : problems;
}
