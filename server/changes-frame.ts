import type { Change } from '../src/protocol/change.ts';
import type { ScopeSet } from './identity.ts';
import { visibleChanges } from './scopes.ts';
import type { StoredRecord } from './sync-store.ts';

/**
 * One `changes` frame for `records`, from their JSON text when the store kept it. `operations`
 * (protocol 1.2) names the receiving client's own operations the records carry.
 */
export function changesFrame(records: readonly StoredRecord[], lsn: string, operations?: readonly string[]): string {
  const named = operations === undefined || operations.length === 0 ? '' : `,"operations":${JSON.stringify(operations)}`;
  if (records.every((record) => record.changesJson !== undefined)) {
    const items = records.map((record) => record.changesJson!.slice(1, -1)).filter((text) => text.length > 0);
    return `{"type":"changes","changes":[${items.join(',')}],"lsn":${JSON.stringify(lsn)}${named}}`;
  }
  const changes: readonly Change[] = records.length === 1 ? records[0]!.changes : records.flatMap((record) => record.changes);
  return `{"type":"changes","changes":${JSON.stringify(changes)},"lsn":${JSON.stringify(lsn)}${named}}`;
}

/** The same, holding only what a reader of `view`'s scopes may see of each record. */
export function scopedChangesFrame(records: readonly StoredRecord[], view: ScopeSet, lsn: string, operations?: readonly string[]): string {
  if (view.all) return changesFrame(records, lsn, operations);
  const sees = (scope: string) => view.has(scope);
  const changes = records.flatMap((record) => visibleChanges(record.changes, record.scopes, sees));
  return changesFrame([{ lsn, position: 0n, changes }], lsn, operations);
}
