/**
 * The server's frames not yet handled, parsed, in arrival order, handed out in steps: one frame,
 * or the batch frames at the head written together in one transaction.
 */
import { batchChanges, isBatchMessage, type BatchMessage } from '../protocol/batches.ts';
import type { InvalidChange } from '../protocol/change.ts';
import {
  type OperationCompleteMessage,
  type OperationErrorMessage,
  type ParseResult,
  type PongMessage,
  type ServerMessage,
} from '../protocol/wire.ts';

/** Batch frames queued together are written in one transaction, up to about this many changes. */
const MAX_CHANGES_PER_TRANSACTION = 5_000;

export type FrameStep =
  | { kind: 'frame'; frame: ParseResult<ServerMessage> }
  /**
   * Batch frames to write in one transaction (each with the invalid changes its parse skipped),
   * and the acknowledgements that came between them, to handle in order after the commit.
   */
  | {
    kind: 'batches';
    batches: { message: BatchMessage; invalid: InvalidChange[] }[];
    after: ParseResult<ServerMessage>[];
  };

/** Frames that answer the client and depend on nothing stored after them. */
export function isAnswer(
  message: ServerMessage,
): message is OperationCompleteMessage | OperationErrorMessage | PongMessage {
  return message.type === 'operation_complete' || message.type === 'operation_error' || message.type === 'pong';
}

export class FrameQueue {
  #frames: ParseResult<ServerMessage>[] = [];

  get size(): number {
    return this.#frames.length;
  }

  push(frame: ParseResult<ServerMessage>): void {
    this.#frames.push(frame);
  }

  clear(): void {
    this.#frames = [];
  }

  /**
   * The next step. Batch frames at the head are taken together (up to a size), so that frames
   * which arrived while the last transaction ran are written in one transaction; an ack never
   * overtakes its change, since the acks taken along are handled after the commit.
   */
  next(): FrameStep | undefined {
    const batches: { message: BatchMessage; invalid: InvalidChange[] }[] = [];
    const after: ParseResult<ServerMessage>[] = [];
    let size = 0;
    while (size < MAX_CHANGES_PER_TRANSACTION) {
      const head = this.#frames[0];
      if (!head?.ok) break;
      if (isBatchMessage(head.message)) {
        batches.push({ message: head.message, invalid: head.invalid });
        size += batchChanges(head.message).length;
      } else if (batches.length > 0 && isAnswer(head.message)) {
        after.push(head);
      } else {
        break;
      }
      this.#frames.shift();
    }
    if (batches.length > 0) return { kind: 'batches', batches, after };
    const frame = this.#frames.shift();
    return frame && { kind: 'frame', frame };
  }
}
