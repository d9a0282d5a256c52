import type { LSN } from '../src/protocol/lsn.ts';
import type { LogFile } from './append-log.ts';
import { entityKey } from './edit.ts';
import type { LogIndex } from './log-index.ts';
import { readFrames, type Frame } from './log-reader.ts';
import { InvalidCursorError, PAGE_BYTES, type Entity, type EntityPage, type PageOptions, type StoredRecord } from './sync-store.ts';

export interface PageSource {
  file: LogFile;
  index: LogIndex;
  head: LSN;
  decode(frame: Frame): StoredRecord;
}

/**
 * One page of the embedded store's entities, read from the records the index names as holding
 * some entity's latest value, in log order (so entities come in the order of their last write).
 * A page stops at `limit` entities or about PAGE_BYTES of records read. The cursor is
 * `<offset>.<skip>`: where to go on in the log, and how many entities of the record there were
 * already given.
 */
export async function entityPage({ limit, after, scopes }: PageOptions, { file, index, head, decode }: PageSource): Promise<EntityPage> {
  const inScope = scopes === undefined ? undefined : new Set(scopes);
  let { offset, skip } = after === undefined ? { offset: 0, skip: 0 } : parseCursor(after);
  const entities: Entity[] = [];
  let bytes = 0;
  for (let start = index.nextLiveRecord(offset); start !== undefined; start = index.nextLiveRecord(offset)) {
    if (entities.length >= limit || (entities.length > 0 && bytes >= PAGE_BYTES)) return { lsn: head, entities, next: `${offset}.${skip}` };
    if (start !== offset) skip = 0;
    const [frame] = await readFrames(file, start, index.end, 0);
    if (!frame) break;
    const latest = latestIn(decode(frame), start, index, inScope);
    const room = limit - entities.length;
    entities.push(...latest.slice(skip, skip + room));
    bytes += frame.end - frame.start;
    if (latest.length - skip > room) return { lsn: head, entities, next: `${start}.${skip + room}` };
    offset = frame.end;
    skip = 0;
  }
  return { lsn: head, entities };
}

/**
 * The record's entities whose latest value it holds, each once (its last change), in record order;
 * only those in `inScope` when given.
 */
function latestIn(record: StoredRecord, start: number, index: LogIndex, inScope: ReadonlySet<string> | undefined): Entity[] {
  const seen = new Set<string>();
  const latest: Entity[] = [];
  for (let i = record.changes.length - 1; i >= 0; i -= 1) {
    const change = record.changes[i]!;
    const key = entityKey(change.entityType, change.entityId);
    if (seen.has(key)) continue;
    seen.add(key);
    if (change.type === 'update' && index.entityRecord(key) === start && (!inScope || inScope.has(index.entityScope(key)))) {
      latest.push({ entityType: change.entityType, entityId: change.entityId, data: change.data });
    }
  }
  return latest.reverse();
}

function parseCursor(cursor: string): { offset: number; skip: number } {
  const match = /^(\d{1,15})\.(\d{1,9})$/.exec(cursor);
  if (!match) throw new InvalidCursorError('malformed cursor');
  return { offset: Number(match[1]), skip: Number(match[2]) };
}
