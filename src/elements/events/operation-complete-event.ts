import type { SyncEventDetails } from '../../client/service-events.ts';
import { SyncEvent } from './sync-event.ts';

/** The server acknowledged a queued operation. */
export class OperationCompleteEvent extends SyncEvent<SyncEventDetails['operation_complete']> {
  static readonly eventName = 'operation_complete';

  constructor(detail: SyncEventDetails['operation_complete']) {
    super(OperationCompleteEvent.eventName, detail);
  }
}
