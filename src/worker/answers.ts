/**
 * The server's answers to operations, taken as they come rather than behind the commit of a batch
 * being written, and posted to the page with the number still unanswered: that count is all of the
 * state an answer changes, so a burst of answers costs no state posts of its own.
 */
import { effectsOf, entitiesOf } from '../protocol/effects.ts';
import type { QueuedOperation, SyncErrorDetail, SyncState } from '../protocol/state.ts';
import type { OperationCompleteMessage, OperationErrorMessage } from '../protocol/wire.ts';
import type { WorkerPost } from '../protocol/worker-messages.ts';
import type { OutboxListener } from './outbox.ts';
import type { Session } from './session.ts';

export type OperationAnswer = OperationCompleteMessage | OperationErrorMessage;

type AnswerPost = Extract<WorkerPost, { type: 'operation_complete' | 'operation_error' }>;

export interface AnswersHost {
  /** Whether `session` is the one the page sees. */
  current(session: Session | undefined): boolean;
  /** Posts after the state it goes with. */
  post(message: WorkerPost): void;
  /** The page learns these fields with the next post: they need no state post of their own. */
  told(fields: Partial<SyncState>): void;
  update(patch: Partial<SyncState>): void;
  reportError(detail: SyncErrorDetail): void;
}

export class Answers {
  readonly #host: AnswersHost;

  constructor(host: AnswersHost) {
    this.#host = host;
  }

  handle(session: Session, answer: OperationAnswer): void {
    const { outbox } = session;
    if (answer.type === 'operation_complete') {
      outbox.complete(answer.id, answer.lsn, session.store.lastLSN);
    } else if (!answer.retryable) {
      outbox.reject(answer.id, answer.message);
    } else if (outbox.defer(answer.id)) {
      this.#host.reportError({
        code: 'server',
        message: `The server could not apply operation ${answer.id} now (${answer.message}); operations stay queued and are sent again in ${Math.round(outbox.retryDelay / 100) / 10} s`,
      });
    }
  }

  /** What the outbox of the session `owner` returns tells the page. */
  listener(owner: () => Session | undefined): OutboxListener {
    const host = this.#host;
    return {
      // An answer the server gave stands even when the session ended since.
      completed: (id, lsn, settled) => this.#post(owner(), {
        type: 'operation_complete', id, ...(lsn === undefined ? {} : { lsn }), ...(settled ? { settled: true } : {}),
      }),
      failed: (operation, message) => this.#post(owner(), refused(operation, message)),
      settled: (ids) => host.post({ type: 'changes', changes: [], settled: ids }),
      pendingChanged: (count) => {
        if (host.current(owner())) host.update({ pendingOperations: count });
      },
      // A lost session's deletes fail with its database: that loss is reported once already.
      storageError: (message) => {
        if (host.current(owner())) host.reportError({ code: 'storage', message });
      },
    };
  }

  /** An answer carries the count still unanswered, the one field of the state it changed. */
  #post(session: Session | undefined, message: AnswerPost): void {
    if (!session || !this.#host.current(session)) {
      this.#host.post(message);
      return;
    }
    const pending = session.outbox.pendingCount;
    this.#host.told({ pendingOperations: pending });
    this.#host.post({ ...message, pending });
  }
}

/** The `operation_error` for an operation refused for good, naming the entities its effects touched. */
export function refused(operation: QueuedOperation, message: string): AnswerPost {
  return { type: 'operation_error', id: operation.id, message, entities: entitiesOf(effectsOf(operation)) };
}
