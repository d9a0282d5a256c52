import type { Change } from '../src/protocol/change.ts';
import type { StoredRecord } from './sync-store.ts';

/** One `changes` frame for `records`, from their JSON text when the store kept it. */
export function changesFrame(records: readonly StoredRecord[], lsn: string): string {
  if (records.every((record) => record.changesJson !== undefined)) {
    const items = records.map((record) => record.changesJson!.slice(1, -1)).filter((text) => text.length > 0);
    return `{"type":"changes","changes":[${items.join(',')}],"lsn":${JSON.stringify(lsn)}}`;
  }
  const changes: readonly Change[] = records.length === 1 ? records[0]!.changes : records.flatMap((record) => record.changes);
  return JSON.stringify({ type: 'changes', changes, lsn });
}
