import type { ScopeSet } from './identity.ts';
import { RecordFrames } from './record-frames.ts';
import type { StoredRecord } from './sync-store.ts';

/** Whoever is offered live records: one connection. */
export interface Receiver {
  /** Offers a newly durable record; `ownOperation`: the id of this receiver's operation that wrote it. */
  deliver(frames: RecordFrames, ownOperation?: string): void;
}

/**
 * Who gets each new record: the receivers that see every scope, those of the scopes the record
 * touches (found by scope, not by asking every receiver), and the receiver whose operation wrote
 * it (its own frame, naming the operation). A receiver offered nothing is behind by records it may
 * not see; {@link scoped} lists them so that their resume point can be moved on.
 */
export class Subscribers<R extends Receiver> {
  readonly #everything = new Set<R>();
  readonly #byScope = new Map<string, Set<R>>();
  readonly #views = new Map<R, ScopeSet>();
  /** Operation key -> the receivers waiting for it, with the id each sent it under. */
  readonly #writers = new Map<string, Map<R, string>>();

  /** Offers `receiver` every record `view` sees from now on (replacing what it saw before). */
  join(receiver: R, view: ScopeSet): void {
    this.leave(receiver);
    this.#views.set(receiver, view);
    if (view.all) {
      this.#everything.add(receiver);
      return;
    }
    for (const scope of view.names) {
      const receivers = this.#byScope.get(scope);
      if (receivers) receivers.add(receiver);
      else this.#byScope.set(scope, new Set([receiver]));
    }
  }

  leave(receiver: R): void {
    const view = this.#views.get(receiver);
    if (!view) return;
    this.#views.delete(receiver);
    this.#everything.delete(receiver);
    for (const scope of view.names) {
      const receivers = this.#byScope.get(scope);
      receivers?.delete(receiver);
      if (receivers?.size === 0) this.#byScope.delete(scope);
    }
  }

  /** `receiver` sent the operation kept as `key` (its own id: `operationId`): its record goes to it in a frame of its own. */
  expect(key: string, receiver: R, operationId: string): void {
    const waiting = this.#writers.get(key);
    if (waiting) waiting.set(receiver, operationId);
    else this.#writers.set(key, new Map([[receiver, operationId]]));
  }

  settle(key: string, receiver: R): void {
    const waiting = this.#writers.get(key);
    waiting?.delete(receiver);
    if (waiting?.size === 0) this.#writers.delete(key);
  }

  /** Offers `record` to everyone who may see it, and to its writer. */
  publish(record: StoredRecord): void {
    const frames = new RecordFrames(record);
    const writers = record.operationId === undefined ? undefined : this.#writers.get(record.operationId);
    if (writers) for (const [receiver, operationId] of writers) receiver.deliver(frames, operationId);
    for (const receiver of this.#everything) if (!writers?.has(receiver)) receiver.deliver(frames);
    const offered = frames.touched.length > 1 ? new Set<R>() : undefined;
    for (const scope of frames.touched) {
      for (const receiver of this.#byScope.get(scope) ?? []) {
        if (writers?.has(receiver) || offered?.has(receiver)) continue;
        offered?.add(receiver);
        receiver.deliver(frames);
      }
    }
  }

  /** The receivers that see only some scopes. */
  scoped(): Iterable<R> {
    return [...this.#views.keys()].filter((receiver) => !this.#everything.has(receiver));
  }
}
