import type { Change } from '../protocol/change.ts';
import type { LSN } from '../protocol/lsn.ts';
import type { StoredEntity } from './schema.ts';

/** The record the local store keeps for an update, written by a batch at `lsn` (if it had one). */
export function storedEntity(change: Change & { type: 'update' }, lsn: LSN | undefined): StoredEntity {
  const entity: StoredEntity = { entityType: change.entityType, entityId: change.entityId, data: change.data };
  if (change.timestamp !== undefined) entity.timestamp = change.timestamp;
  if (lsn !== undefined) entity.lsn = lsn;
  return entity;
}
