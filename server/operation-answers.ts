import type { KnownServerMessage, OperationCompleteMessage, WireOperation } from '../src/protocol/wire.ts';
import { operationKey, type Identity } from './identity.ts';
import type { OperationWriter } from './operation-writer.ts';
import type { Receiver, Subscribers } from './subscribers.ts';
import type { StoredRecord } from './sync-store.ts';

/** What the answers need of the connection they are sent on. */
export interface AnswerChannel {
  send(message: KnownServerMessage): void;
  /** Whether the client has been sent the record at `position` (true when it is not syncing, so gets none). */
  hasSeen(position: bigint): boolean;
  /** The store failed for good: close, so that the client re-sends what is unanswered on its next connection. */
  storeFailed(): void;
}

/**
 * One client's operations: each written through the writer and answered, `operation_complete`
 * held until the client has been sent the change itself; and, while unanswered, known by their
 * key, so that a batch carrying one names it (protocol 1.2) and the record's own frame goes to it.
 */
export class OperationAnswers<R extends Receiver> {
  readonly #writer: OperationWriter;
  readonly #subscribers: Subscribers<R>;
  readonly #receiver: R;
  readonly #channel: AnswerChannel;
  /** `operation_complete` answers held until the client has been sent the change itself. */
  #held: { position: bigint; message: OperationCompleteMessage; key: string }[] = [];
  /** This client's operations not answered yet (or whose answer waits for their change): key -> its id. */
  readonly #own = new Map<string, string>();

  constructor(writer: OperationWriter, subscribers: Subscribers<R>, receiver: R, channel: AnswerChannel) {
    this.#writer = writer;
    this.#subscribers = subscribers;
    this.#receiver = receiver;
    this.#channel = channel;
  }

  /** Writes `operation` as `identity` and answers it. */
  write(operation: WireOperation, identity: Identity): void {
    const subscribers = this.#subscribers;
    const key = operationKey(identity.id, operation.id);
    this.#own.set(key, operation.id);
    subscribers.expect(key, this.#receiver, operation.id);
    void this.#writer.write(operation, identity).then((outcome) => {
      subscribers.settle(key, this.#receiver);
      if (outcome.kind !== 'applied') this.#own.delete(key);
      switch (outcome.kind) {
        case 'applied':
          this.#acknowledge(outcome.position, { type: 'operation_complete', id: operation.id, lsn: outcome.lsn }, key);
          return;
        case 'rejected':
          this.#channel.send({ type: 'operation_error', id: operation.id, message: outcome.message, ...(outcome.retryable ? { retryable: true } : {}) });
          return;
        case 'store-failed':
          // Closing is the one answer the protocol has that makes the client re-send every
          // unacknowledged operation: on its next connection, to a working store.
          this.#channel.storeFailed();
          return;
        default: {
          const unexpected: never = outcome;
          throw new Error(`unhandled outcome ${JSON.stringify(unexpected)}`);
        }
      }
    });
  }

  /** The client has been sent every record up to `cursor`: the answers that waited for one go. */
  reached(cursor: bigint): void {
    if (this.#held.length > 0) this.#release(cursor);
  }

  /** The client starts over (`reset`): every answer held goes now. */
  releaseAll(): void {
    this.#release(undefined);
  }

  /** The ids of this client's operations that `records` carry (protocol 1.2), if any. */
  idsIn(records: readonly StoredRecord[]): string[] | undefined {
    if (this.#own.size === 0) return undefined;
    const ids = records.flatMap((record) => {
      const id = record.operationId === undefined ? undefined : this.#own.get(record.operationId);
      return id === undefined ? [] : [id];
    });
    return ids.length > 0 ? ids : undefined;
  }

  /** The socket closed: nothing held is sent, and no record goes to it as its own any more. */
  close(): void {
    this.#held = [];
    for (const key of this.#own.keys()) this.#subscribers.settle(key, this.#receiver);
    this.#own.clear();
  }

  /** Answers an operation once the client has been sent its change (at once if not syncing). */
  #acknowledge(position: bigint, message: OperationCompleteMessage, key: string): void {
    if (this.#channel.hasSeen(position)) {
      this.#own.delete(key);
      this.#channel.send(message);
    } else {
      this.#held.push({ position, message, key });
    }
  }

  /** Sends the answers held for records up to `cursor`; all of them when it is undefined. */
  #release(cursor: bigint | undefined): void {
    const held = this.#held;
    this.#held = [];
    for (const ack of held) {
      if (cursor === undefined || ack.position <= cursor) {
        this.#own.delete(ack.key);
        this.#channel.send(ack.message);
      } else {
        this.#held.push(ack);
      }
    }
  }
}
