import type { Change } from '../protocol/change.ts';
import type { EntityRef } from '../protocol/effects.ts';
import type { LSN } from '../protocol/lsn.ts';
import type { SyncErrorDetail, SyncProgress, SyncState } from '../protocol/state.ts';

/** The events of a sync client and their details; the element re-dispatches each as a DOM event. */
export interface SyncEventDetails {
  connected: { clientId: string; lastLSN: LSN };
  disconnected: { code: number; reason: string; willReconnect: boolean };
  reconnecting: { attempt: number; delay: number };
  sync_started: { lsn?: LSN; total?: number };
  sync_progress: SyncProgress;
  sync_completed: { lsn: LSN };
  /** The server's log does not continue from the resume point: the store was emptied and syncs again from 0/0. */
  sync_reset: { reason?: string };
  changes: { changes: Change[]; lsn?: LSN };
  operation_complete: { id: string; lsn?: LSN };
  /** `entities`: those the operation's effects touched, which every reader now shows without it. */
  operation_error: { id: string; message: string; entities: EntityRef[] };
  state_change: { state: SyncState };
  message: { message: Record<string, unknown> };
  error: SyncErrorDetail;
}

export type SyncEventType = keyof SyncEventDetails;

/** Each event type once; a record, so that the compiler notices a type missing here. */
const EVENT_TYPE_SET: Record<SyncEventType, true> = {
  connected: true, disconnected: true, reconnecting: true, sync_started: true, sync_progress: true,
  sync_completed: true, sync_reset: true, changes: true, operation_complete: true, operation_error: true,
  state_change: true, message: true, error: true,
};

/** Every event a sync client emits. */
export const SYNC_EVENT_TYPES: readonly SyncEventType[] = Object.freeze(Object.keys(EVENT_TYPE_SET) as SyncEventType[]);

type Listener<K extends SyncEventType> = (detail: SyncEventDetails[K]) => void;

/** A typed listener registry. Each `on` returns the function that removes that listener. */
export class SyncEventEmitter {
  readonly #listeners = new Map<SyncEventType, Set<Listener<never>>>();

  on<K extends SyncEventType>(type: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends SyncEventType>(type: K, detail: SyncEventDetails[K]): void {
    const set = this.#listeners.get(type);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<K>)(detail);
      } catch (error) {
        // A listener's bug must not stop the others nor the client; surface it like the DOM does.
        queueMicrotask(() => { throw error; });
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}
