/**
 * Records the sync events of an element (DOM events with a `detail`) or of a client (its `on`),
 * with each detail typed by its event type.
 */
import type { SyncEventDetails, SyncEventType } from '../../src/client/service-events.ts';
import { within } from './wait.ts';

/** What emits the sync events: a `<sync-connection>` (from any frame) or a client such as `WorkerSyncService`. */
export type EventSource =
  | EventTarget
  | { on<K extends SyncEventType>(type: K, listener: (detail: SyncEventDetails[K]) => void): () => void };

/** One recorded event; `event` is the DOM event, absent for a client's events. */
export type Recorded<K extends SyncEventType = SyncEventType> = {
  [T in K]: { type: T; detail: SyncEventDetails[T]; event?: Event };
}[K];

export class EventLog<K extends SyncEventType> {
  /** Every recorded event, in the order they arrived. */
  readonly entries: Recorded<K>[] = [];
  readonly #watchers = new Set<() => void>();
  readonly #stops: (() => void)[] = [];

  constructor(source: EventSource, types: readonly K[]) {
    for (const type of types) {
      if ('on' in source && typeof source.on === 'function') {
        this.#stops.push(source.on(type, (detail) => this.#push({ type, detail } as Recorded<K>)));
      } else {
        const target = source as EventTarget;
        const listener = (event: Event): void => {
          this.#push({ type, detail: (event as CustomEvent<SyncEventDetails[K]>).detail, event } as Recorded<K>);
        };
        target.addEventListener(type, listener);
        this.#stops.push(() => target.removeEventListener(type, listener));
      }
    }
  }

  /** The details of the `type` events recorded so far (at index `from` or later), in order. */
  of<T extends K>(type: T, from = 0): SyncEventDetails[T][] {
    return this.entries.slice(from).filter((entry): entry is Recorded<T> => entry.type === type).map((entry) => entry.detail);
  }

  /** How many `type` events were recorded (at index `from` or later). */
  count(type: K, from = 0): number {
    return this.of(type, from).length;
  }

  /** The recorded event types, in order. */
  types(): K[] {
    return this.entries.map((entry) => entry.type);
  }

  /**
   * Resolves with the detail of the first `type` event at index `from` or later that satisfies
   * `match`, recorded already or still to come; rejects after `timeout` ms.
   */
  waitFor<T extends K>(
    type: T,
    match: (detail: SyncEventDetails[T]) => boolean = () => true,
    { from = 0, timeout = 8000 }: { from?: number; timeout?: number } = {},
  ): Promise<SyncEventDetails[T]> {
    const find = (): SyncEventDetails[T] | undefined => this.of(type, from).find(match);
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    let watcher!: () => void;
    const arrived = new Promise<SyncEventDetails[T]>((resolve) => {
      watcher = () => {
        const detail = find();
        if (detail !== undefined) resolve(detail);
      };
      this.#watchers.add(watcher);
    });
    const recent = (): string => this.types().slice(-8).join(', ') || 'none';
    return within(arrived, `a "${type}" event`, timeout)
      .catch((error: Error) => { throw new Error(`${error.message} (recent events: ${recent()})`); })
      .finally(() => this.#watchers.delete(watcher));
  }

  /** Stops recording; what was recorded stays. */
  stop(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }

  #push(entry: Recorded<K>): void {
    this.entries.push(entry);
    for (const watcher of [...this.#watchers]) watcher();
  }
}

/** Starts recording the `types` events of `source`. */
export function record<const K extends SyncEventType>(source: EventSource, types: readonly K[]): EventLog<K> {
  return new EventLog(source, types);
}
