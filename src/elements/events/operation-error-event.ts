import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The server rejected a queued operation for good. */
export class OperationErrorEvent extends SyncEvent<SyncEventDetails['operation_error']> {
  static readonly eventName = 'operation_error';

  constructor(detail: SyncEventDetails['operation_error']) {
    super(OperationErrorEvent.eventName, detail);
  }
}
