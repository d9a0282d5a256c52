/**
 * The round trip to a page that applies the changes to a database of its own (`applyOnPage`):
 * the worker posts the batches that are not replays as one `apply`, the page commits them one
 * transaction each and answers `applied` with how many it committed; the worker then stores the
 * resume point of the last one.
 */
import { InvalidStateError, StorageError } from '../protocol/errors.ts';
import type { PageToWorker, WorkerEvent } from '../protocol/worker-messages.ts';
import { freshBatches, type ApplyResult, type Batch, type ChangeStore } from './change-store.ts';

/** The page's answer to an `apply` event. */
export type PageApplied = Extract<PageToWorker, { type: 'applied' }>;

type ApplyEvent = Extract<WorkerEvent, { type: 'apply' }>;

/** How long the page's Database may take over one `apply` before the batches count as failed. */
const APPLY_TIMEOUT = 60_000;

export class PageApply {
  readonly #post: (event: ApplyEvent) => void;
  /** `apply` events the page has not answered yet. */
  readonly #waiting = new Map<string, (answer: PageApplied) => void>();
  /** Makes this worker's `apply` ids unlike any other worker's. */
  readonly #prefix = crypto.randomUUID();
  #count = 0;

  constructor(post: (event: ApplyEvent) => void) {
    this.#post = post;
  }

  /** Settles the `apply` the page answered; throws for an id nothing waits on. */
  answer(applied: PageApplied): void {
    const settle = this.#waiting.get(applied.applyId);
    if (!settle) throw new InvalidStateError(`No batches wait for the answer ${JSON.stringify(applied.applyId)}`);
    this.#waiting.delete(applied.applyId);
    settle(applied);
  }

  /**
   * Hands the batches that are not replays to the page, then stores the resume point of the last
   * one it committed. A batch the page could not commit fails the group from there on, and its
   * LSN is not stored.
   */
  async apply(store: ChangeStore, batches: Batch[]): Promise<{ results: ApplyResult[]; failure: StorageError | undefined }> {
    const before = store.lastLSN;
    const fresh = freshBatches(batches, before);
    const results: ApplyResult[] = batches.map(() => ({ applied: false, lastLSN: before }));
    if (fresh.length === 0) return { results, failure: undefined };
    const { count, error } = await this.#roundTrip(fresh.map(({ index, lsn }) => {
      const changes = [...batches[index]!.changes];
      return lsn === undefined ? { changes } : { changes, lsn };
    }));
    const committed = fresh.slice(0, Math.min(count, fresh.length));
    let last = before;
    for (const { index, lsn } of committed) {
      if (lsn !== undefined) last = lsn;
      results[index] = { applied: true, lastLSN: last, unstorable: [] };
    }
    if (last !== before) await store.saveLSN(last);
    const failed = fresh[committed.length];
    if (failed === undefined) return { results, failure: undefined };
    const at = batches[failed.index]!.lsn;
    return {
      results,
      failure: new StorageError(
        `The page's database did not apply the batch${at === undefined ? '' : ` at ${at}`}: ${error ?? 'no reason given'}`,
      ),
    };
  }

  /** Posts one `apply` and waits for its answer, or for the timeout. */
  async #roundTrip(batches: ApplyEvent['batches']): Promise<Pick<PageApplied, 'count' | 'error'>> {
    const applyId = `${this.#prefix}/${++this.#count}`;
    const answered = new Promise<PageApplied>((resolve) => this.#waiting.set(applyId, resolve));
    this.#post({ type: 'apply', applyId, batches });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = await Promise.race([
      answered,
      new Promise<Pick<PageApplied, 'count' | 'error'>>((resolve) => {
        timer = setTimeout(() => {
          // A late answer then matches nothing; the batches come again after the reconnect.
          this.#waiting.delete(applyId);
          resolve({ count: 0, error: `the page's Database did not finish within ${APPLY_TIMEOUT / 1000} s` });
        }, APPLY_TIMEOUT);
      }),
    ]);
    clearTimeout(timer);
    return answer;
  }
}
