/**
 * The server frames that carry changes to store ("batch frames"), listed once: what is one, and
 * the changes it carries whatever its shape.
 */
import type { Change } from './change.ts';
import type { ServerMessage } from './wire.ts';

/** Every frame type that carries changes. */
export const BATCH_FRAME_TYPES = ['changes', 'batch_update', 'sync_data', 'entity_update', 'entity_delete'] as const;

export type BatchFrameType = (typeof BATCH_FRAME_TYPES)[number];

export type BatchMessage = Extract<ServerMessage, { type: BatchFrameType }>;

const BATCH_TYPES: ReadonlySet<string> = new Set(BATCH_FRAME_TYPES);

export function isBatchMessage(message: ServerMessage): message is BatchMessage {
  return BATCH_TYPES.has(message.type);
}

/** The changes a batch frame carries, in order; a single-entity frame is a batch of one. */
export function batchChanges(message: BatchMessage): Change[] {
  switch (message.type) {
    case 'changes':
      return message.changes;
    case 'batch_update':
    case 'sync_data':
      return message.data;
    case 'entity_update':
      return [{
        type: 'update', entityType: message.entityType, entityId: message.entityId, data: message.data,
        ...(message.timestamp === undefined ? {} : { timestamp: message.timestamp }),
      }];
    case 'entity_delete':
      return [{
        type: 'delete', entityType: message.entityType, entityId: message.entityId,
        ...(message.timestamp === undefined ? {} : { timestamp: message.timestamp }),
      }];
  }
}
