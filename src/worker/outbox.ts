/**
 * The worker's view of the durable write queue. The page stores each operation in the `outbox`
 * store and then tells the worker; the worker sends them in priority order with a bounded number
 * unacknowledged, deletes each when the server answers, and re-sends the rest after a reconnect.
 */
import type { LocalStore } from '../db/local-store.ts';
import { compareQueued } from '../db/schema.ts';
import { isRecord } from '../protocol/change.ts';
import { compareLSN, type LSN } from '../protocol/lsn.ts';
import type { QueuedOperation } from '../protocol/state.ts';
import type { OperationMessage } from '../protocol/wire.ts';
import { errorMessage, StorageError } from '../protocol/errors.ts';
import { Acknowledged, type Covered } from './acknowledged.ts';
import { OutboxDeletions } from './outbox-deletions.ts';
import { OversizeSuspects, TOO_LARGE_MESSAGE } from './oversize.ts';

/** Operations sent and not yet acknowledged on one connection, at most. */
export const DEFAULT_IN_FLIGHT_WINDOW = 1024;

/** The first and the longest pause after the server defers an operation (`retryable`). */
const RETRY_MIN = 1_000;
const RETRY_MAX = 30_000;

/** The operation type whose payload is sent as the frame itself. */
export const SEND_MESSAGE = 'send_message';

export interface OutboxTransport {
  readonly isOpen: boolean;
  /** Writes one frame; false when it could not. */
  send(frame: OperationMessage | Record<string, unknown>): boolean;
}

export interface OutboxListener {
  /** Acknowledged; `settled` when its record is gone, else a commit covering `lsn` will delete it. */
  completed(id: string, lsn: LSN | undefined, settled: boolean): void;
  /** The records of these acknowledged operations are gone: the store shows what they did. */
  settled(ids: string[]): void;
  failed(operation: QueuedOperation, message: string): void;
  /** The number of unacknowledged operations changed. */
  pendingChanged(count: number): void;
  /** An outbox record could not be deleted; it will be sent again by a later worker. */
  storageError(message: string): void;
}

export class Outbox {
  readonly #store: LocalStore;
  readonly #transport: OutboxTransport;
  readonly #listener: OutboxListener;
  readonly #window: number;
  /** Every operation not yet acknowledged, by id. */
  readonly #pending = new Map<string, QueuedOperation>();
  /** Not sent on the current connection, in `compareQueued` order. */
  #waiting: QueuedOperation[] = [];
  /** Sent on the current connection, waiting for the answer. */
  readonly #inFlight = new Set<string>();
  /** Acknowledged, their records kept until the stored state covers them. */
  readonly #acknowledged = new Acknowledged();
  /** Announced operations waiting for the check that their records exist. */
  #announced: QueuedOperation[] = [];
  /** Admissions and clears, one at a time in the order they were asked for. */
  #turns: Promise<void> = Promise.resolve();
  readonly #deletions: OutboxDeletions;
  readonly #oversize = new OversizeSuspects();
  /** Set while sending pauses because the server deferred an operation; clears itself. */
  #pause: ReturnType<typeof setTimeout> | undefined;
  #retryDelay = RETRY_MIN;

  constructor(store: LocalStore, transport: OutboxTransport, listener: OutboxListener, window = DEFAULT_IN_FLIGHT_WINDOW) {
    this.#store = store;
    this.#transport = transport;
    this.#listener = listener;
    this.#window = Math.max(1, window);
    this.#deletions = new OutboxDeletions(store, (message) => listener.storageError(message));
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Every operation not yet acknowledged. */
  pending(): QueuedOperation[] {
    return [...this.#pending.values()];
  }

  has(id: string): boolean {
    return this.#pending.has(id);
  }

  /** Loads every record left in the outbox (by an earlier page or worker). */
  async load(): Promise<void> {
    let records: QueuedOperation[];
    try {
      records = await this.#store.operations();
    } catch (error) {
      throw new StorageError(`Could not read the outbox: ${errorMessage(error)}`);
    }
    for (const record of records) this.#insert(record);
    this.#listener.pendingChanged(this.#pending.size);
  }

  /**
   * Takes an operation a page has stored and announced, if its record is in the outbox; sends it
   * when possible. A known id is ignored. An announcement can arrive after a clear removed the
   * record (another tab's clear won the race): checking the store, in turn with the clears,
   * leaves nothing to remember about what was cleared.
   */
  add(operation: QueuedOperation): Promise<void> {
    if (this.#pending.has(operation.id) || this.#acknowledged.has(operation.id)) return Promise.resolve();
    this.#announced.push(operation);
    return this.#inTurn(() => this.#admit());
  }

  /**
   * Takes operations the page that runs this worker has just stored: no other tab's clear can
   * have come between, so nothing is read; still in turn with this page's clears.
   */
  addStored(operations: readonly QueuedOperation[]): Promise<void> {
    return this.#inTurn(async () => {
      let added = false;
      for (const operation of operations) {
        if (!this.#acknowledged.has(operation.id) && this.#insert(operation)) added = true;
      }
      if (!added) return;
      this.#listener.pendingChanged(this.#pending.size);
      this.pump();
    });
  }

  /** Admits every announcement waiting, with one read of the store. */
  async #admit(): Promise<void> {
    const announced = this.#announced;
    if (announced.length === 0) return;
    this.#announced = [];
    let stored: Set<string> | undefined;
    try {
      stored = await this.#store.storedOperationIds(announced.map((operation) => operation.id));
    } catch {
      // The page stored these a moment ago; a store that cannot be read now is no reason to
      // leave their promises waiting for a restart.
    }
    let added = false;
    for (const operation of announced) {
      if (stored && !stored.has(operation.id)) continue;
      if (this.#insert(operation)) added = true;
    }
    if (!added) return;
    this.#listener.pendingChanged(this.#pending.size);
    this.pump();
  }

  #inTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.#turns.then(work);
    this.#turns = turn.then(() => undefined, () => undefined);
    return turn;
  }

  /** Sends waiting operations while the socket is open, the window has room and nothing pauses it. */
  pump(): void {
    while (this.#transport.isOpen && !this.#pause) {
      const next = this.#waiting[0];
      if (!next) return;
      const full = this.#inFlight.size >= this.#oversize.window(this.#window);
      if (next.type === SEND_MESSAGE) {
        // While suspects are tested, a raw frame must not share the connection with one.
        if (full && this.#oversize.testing) return;
        if (!this.#sendRaw(next)) return;
        continue;
      }
      if (full) return;
      const frame: OperationMessage = {
        type: 'operation',
        operation: { id: next.id, type: next.type, payload: next.payload },
      };
      if (!this.#transport.send(frame)) return;
      this.#waiting.shift();
      this.#inFlight.add(next.id);
    }
  }

  /** Writes a frame nobody acknowledges (the page's `send_message`); false when it could not. */
  sendFrame(frame: Record<string, unknown>): boolean {
    if (!this.#transport.send(frame)) return false;
    this.#oversize.rawFrameWritten();
    return true;
  }

  /**
   * The socket closed with `code`: whatever was in flight is sent again, same id, on the next
   * connection, except an operation the close proved too large, which is rejected for good.
   */
  connectionClosed(code: number): void {
    const culprit = this.#oversize.connectionClosed(code, this.#inFlight);
    for (const id of this.#inFlight) {
      const operation = this.#pending.get(id);
      if (operation && id !== culprit) this.#waiting.push(operation);
    }
    this.#inFlight.clear();
    this.#waiting.sort(compareQueued);
    if (culprit !== undefined) this.#fail(culprit, TOO_LARGE_MESSAGE);
  }

  /**
   * `operation_complete`. When the stored resume point `stored` has not reached the answer's
   * `lsn`, the record stays until a commit covers it ({@link coveredBy}); otherwise it is deleted,
   * then reported. An unknown id is ignored. Does not wait for the delete, so acknowledgements
   * arriving together share one transaction; reports still come in the order of the answers,
   * because transactions on one store commit in order.
   */
  complete(id: string, lsn: LSN | undefined, stored: LSN): void {
    const operation = this.#pending.get(id);
    if (!operation || !this.#forget(id)) return;
    this.#retryDelay = RETRY_MIN;
    // Answered now; it leaves the pending layer once the store shows it and its record is gone.
    this.#listener.completed(id, lsn, false);
    if (lsn !== undefined && compareLSN(lsn, stored) > 0) this.#acknowledged.add(operation, lsn, true);
    else void this.#deletions.delete(operation).then(() => this.#listener.settled([id]));
    this.pump();
  }

  /**
   * A batch at `lsn` carries the effects of operation `id` (protocol 1.2): it counts as
   * acknowledged there, and the commit of that batch settles it (see {@link settled}).
   */
  carriedBy(id: string, lsn: LSN): void {
    const operation = this.#pending.get(id);
    if (!operation || !this.#forget(id)) return;
    this.#retryDelay = RETRY_MIN;
    this.#acknowledged.add(operation, lsn, false);
    this.pump();
  }

  /** Acknowledged operations a commit bringing the resume point to `upTo` covers. */
  coveredBy(upTo: LSN): Covered[] {
    return this.#acknowledged.size === 0 ? [] : this.#acknowledged.coveredBy(upTo);
  }

  /**
   * A commit deleted the records of these acknowledged operations; those a batch named are
   * reported acknowledged now, settled.
   */
  settled(ids: readonly string[]): void {
    for (const { id, lsn } of this.#acknowledged.settled(ids)) this.#listener.completed(id, lsn, true);
  }

  /**
   * The server's log was replaced (`reset`): what it acknowledged may be gone with the old log, so
   * every acknowledged operation still waiting is sent again, with its id, on the next sync.
   */
  reset(): void {
    const again = this.#acknowledged.takeAll();
    if (again.length === 0) return;
    for (const operation of again) this.#insert(operation);
    this.#listener.pendingChanged(this.#pending.size);
    this.pump();
  }

  /** How long sending pauses after the next deferral, in ms. */
  get retryDelay(): number {
    return this.#retryDelay;
  }

  /**
   * `operation_error` with `retryable`: the server could not apply it now. It stays in the outbox,
   * back in its place in the order, and sending pauses for a delay that doubles while the server
   * keeps deferring (1 s to 30 s). True when this began a pause (report it once), false for an
   * operation that is not in flight or a pause already under way.
   */
  defer(id: string): boolean {
    const operation = this.#pending.get(id);
    if (!operation || !this.#inFlight.delete(id)) return false;
    this.#oversize.settled(id);
    this.#waiting.splice(this.#insertionIndex(operation), 0, operation);
    if (this.#pause) return false;
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(RETRY_MAX, delay * 2);
    this.#pause = setTimeout(() => {
      this.#pause = undefined;
      this.pump();
    }, delay);
    return true;
  }

  /** `operation_error`: the server rejected it for good; delete it and report. */
  reject(id: string, message: string): void {
    if (!this.#fail(id, message)) return;
    this.pump();
  }

  /**
   * Drops every unacknowledged operation, in memory and in the store, after the announcements
   * being checked; acknowledged ones stay until the store shows them. Returns the removed ids.
   */
  clear(): Promise<string[]> {
    return this.#inTurn(async () => {
      // Acknowledged operations are done at the server: their records stay until the store shows them.
      const removed = new Set(this.#pending.keys());
      this.#pending.clear();
      this.#waiting = [];
      this.#inFlight.clear();
      this.#oversize.clear();
      this.#listener.pendingChanged(0);
      try {
        for (const key of await this.#store.clearOperations(this.#acknowledged.ids())) removed.add(key);
      } catch (error) {
        throw new StorageError(`Could not clear the outbox: ${errorMessage(error)}`);
      }
      return [...removed];
    });
  }

  #insert(operation: QueuedOperation): boolean {
    if (this.#pending.has(operation.id)) return false;
    this.#pending.set(operation.id, operation);
    const at = this.#insertionIndex(operation);
    this.#waiting.splice(at, 0, operation);
    return true;
  }

  #insertionIndex(operation: QueuedOperation): number {
    let low = 0;
    let high = this.#waiting.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const other = this.#waiting[mid];
      if (other && compareQueued(other, operation) <= 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Removes `id` from memory; false when it is not pending. */
  #forget(id: string): boolean {
    const operation = this.#pending.get(id);
    if (!operation) return false;
    this.#pending.delete(id);
    this.#oversize.settled(id);
    // One in flight is not waiting: answers to a burst do not scan the operations behind it.
    if (!this.#inFlight.delete(id)) {
      const at = this.#insertionIndex(operation) - 1;
      if (this.#waiting[at] === operation) this.#waiting.splice(at, 1);
    }
    this.#listener.pendingChanged(this.#pending.size);
    return true;
  }

  /** Removes `id` for good and reports `message`; false when it is not pending. */
  #fail(id: string, message: string): boolean {
    const operation = this.#pending.get(id);
    if (!operation || !this.#forget(id)) return false;
    void this.#deletions.delete(operation).then(() => this.#listener.failed(operation, message));
    return true;
  }

  /** A `send_message` operation: its payload is the frame; done once written. */
  #sendRaw(operation: QueuedOperation): boolean {
    const { id, payload } = operation;
    if (!isRecord(payload)) {
      this.#fail(id, 'A send_message payload must be a JSON object');
      return true;
    }
    if (!this.sendFrame(payload)) return false;
    this.#forget(id);
    void this.#deletions.delete(operation).then(() => this.#listener.completed(id, undefined, true));
    return true;
  }
}
