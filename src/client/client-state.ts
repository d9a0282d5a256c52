import { errorMessage, SyncError } from '../protocol/errors.ts';
import { INITIAL_STATE, type SyncErrorDetail, type SyncRole, type SyncState } from '../protocol/state.ts';
import { SyncEventEmitter, type SyncEventDetails, type SyncEventType } from './service-events.ts';
import type { ConnectionEvent } from './shared-connection.ts';

/**
 * A client's state snapshot and its events. The state is the worker's (this tab's, or the
 * leader's) as it last said; {@link connectionGone} is the one rule by which the page writes the
 * connection's part itself.
 */
export class ClientState {
  readonly #events = new SyncEventEmitter();
  #state: SyncState = INITIAL_STATE;

  /** The latest snapshot (immutable, replaced on every change). */
  get snapshot(): SyncState {
    return this.#state;
  }

  set(state: SyncState): void {
    if (state === this.#state) return;
    this.#state = Object.isFrozen(state) ? state : Object.freeze({ ...state });
    this.#events.emit('state_change', { state: this.#state });
  }

  update(patch: Partial<SyncState>): void {
    this.set({ ...this.#state, ...patch });
  }

  /**
   * No worker speaks for this tab any more: it stopped leading, its worker died or could not
   * start (`failure`), or the client was cleaned up. Nothing is connected, connecting or syncing.
   */
  connectionGone(failure?: SyncErrorDetail, role: SyncRole = this.#state.role): void {
    this.update({
      status: failure ? 'error' : 'disconnected',
      isConnected: false,
      isConnecting: false,
      syncing: false,
      progress: null,
      role,
      ...(failure ? { lastError: failure } : {}),
    });
  }

  on<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void {
    return this.#events.on(type, listener);
  }

  emit<K extends SyncEventType>(type: K, detail: SyncEventDetails[K]): void {
    this.#events.emit(type, detail);
  }

  /** Emits an event of the worker holding the connection as this client's event of that name. */
  emitWorkerEvent(event: ConnectionEvent): void {
    // An answer says how many operations stay unanswered: the state first, then the event.
    if ((event.type === 'operation_complete' || event.type === 'operation_error') && event.pending !== undefined) {
      this.update({ pendingOperations: event.pending });
    }
    if (event.type === 'connected') {
      this.#events.emit('connected', { clientId: event.clientId, lastLSN: event.lastLSN });
      return;
    }
    switch (event.type) {
      case 'changes':
        // A commit that only moved the resume point, or settled operations, changed no entity.
        if (event.changes.length > 0) this.#events.emit('changes', { changes: event.changes, ...(event.lsn === undefined ? {} : { lsn: event.lsn }) });
        return;
      case 'operation_complete':
        this.#events.emit('operation_complete', { id: event.id, ...(event.lsn === undefined ? {} : { lsn: event.lsn }) });
        return;
      case 'operation_error':
        this.#events.emit('operation_error', { id: event.id, message: event.message, entities: event.entities });
        return;
      case 'store_reopened':
      case 'folded':
        return; // inside the client: the page's news is elsewhere (an `error`; nothing)
      default: {
        const { type, ...detail } = event;
        this.#events.emit(type, detail as never);
      }
    }
  }

  /** Something failed for good: the state says so (see {@link connectionGone}), then an `error` event. */
  fail(error: unknown, code: SyncErrorDetail['code']): void {
    const detail = toDetail(error, code);
    this.connectionGone(detail);
    this.#events.emit('error', detail);
  }

  /** Reports `error` as an `error` event; `code` is for an error that is not a `SyncError`. */
  report(error: unknown, code: SyncErrorDetail['code']): void {
    this.#events.emit('error', toDetail(error, code));
  }

  /** Removes every listener. */
  clear(): void {
    this.#events.clear();
  }
}

function toDetail(error: unknown, code: SyncErrorDetail['code']): SyncErrorDetail {
  if (error instanceof SyncError) return { code: error.code, message: error.message, cause: error.cause };
  return { code, message: errorMessage(error), cause: error };
}
