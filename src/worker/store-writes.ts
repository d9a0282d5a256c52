/**
 * The server frames that write the local store: batches (with the outbox records their commit
 * covers), the end of a whole catch-up (`sync_complete.lsn`), and `reset`. Each commits, then the
 * state catches up with the whole commit, then the page hears of it.
 */
import { batchChanges, batchOperations, type BatchMessage } from '../protocol/batches.ts';
import type { InvalidChange } from '../protocol/change.ts';
import { errorMessage } from '../protocol/errors.ts';
import { compareLSN, ZERO_LSN, type LSN } from '../protocol/lsn.ts';
import type { SyncErrorDetail, SyncProgress, SyncState } from '../protocol/state.ts';
import type { WorkerPost } from '../protocol/worker-messages.ts';
import type { PageApply } from './page-apply.ts';
import type { Session } from './session.ts';

/** What the engine lends the store writes: its state, its posts, and which session is live. */
export interface StoreWritesHost {
  state(): SyncState;
  update(patch: Partial<SyncState>): void;
  post(message: WorkerPost): void;
  reportError(detail: SyncErrorDetail, invalid?: InvalidChange[]): void;
  /** A catch-up starts (a `sync_data` frame without `sync_start`). */
  syncStarted(): void;
  live(): Session | undefined;
  /** The page applies the changes to its own database (`applyOnPage`). */
  onPage(): boolean;
}

export class StoreWrites {
  readonly #host: StoreWritesHost;
  readonly #pageApply: PageApply;

  constructor(host: StoreWritesHost, pageApply: PageApply) {
    this.#host = host;
    this.#pageApply = pageApply;
  }

  /** The page's answer to the batches it was handed (`applied`). */
  answer(applied: Parameters<PageApply['answer']>[0]): void {
    this.#pageApply.answer(applied);
  }

  /**
   * `sync_complete.lsn` after a whole catch-up: the log position it covers, past the changes this
   * client was sent, becomes the resume point.
   */
  async reachCatchUpEnd(session: Session, lsn: LSN): Promise<void> {
    if (compareLSN(lsn, session.store.lastLSN) <= 0) return;
    const settled = await session.store.saveLSN(lsn, session.outbox.coveredBy(lsn));
    if (session === this.#host.live()) {
      this.#host.update({ lastLSN: session.store.lastLSN });
      this.#host.post({ type: 'changes', changes: [], lsn: session.store.lastLSN, ...(settled.length > 0 ? { settled } : {}) });
    }
    // After the commit's event: an acknowledgement never reaches the page before the value it covers.
    session.outbox.settled(settled);
    await this.#settleLate(session);
  }

  /**
   * Operations acknowledged while a commit was being written, which that commit covers: their
   * records go now (a transaction of their own), then the page hears they are settled.
   */
  async #settleLate(session: Session): Promise<void> {
    const covered = session.outbox.coveredBy(session.store.lastLSN);
    if (covered.length === 0) return;
    const late = covered.map(({ id }) => id);
    try {
      await session.local.deleteOperations(covered);
    } catch (error) {
      this.#host.reportError({ code: 'storage', message: `${late.length} answered operation(s) stay in the outbox: ${errorMessage(error)}` });
      return;
    }
    if (session === this.#host.live()) this.#host.post({ type: 'changes', changes: [], settled: late });
    session.outbox.settled(late);
  }

  /**
   * `reset`: the server's log does not continue from the resume point. The store is emptied (the
   * outbox stays), the page hears `sync_reset`, and a sync from `0/0` rebuilds it. True when that
   * sync was sent.
   */
  async reset(session: Session, reason: string | undefined): Promise<boolean> {
    await session.store.reset();
    if (session !== this.#host.live()) return false;
    session.outbox.reset();
    this.#host.update({ lastLSN: ZERO_LSN, syncing: false, progress: null });
    this.#host.post({ type: 'sync_reset', ...(reason === undefined ? {} : { reason }) });
    return session.connection.sendSync();
  }

  /** Batch frames written in one transaction (or handed to the page's database), then reported. */
  async applyBatches(session: Session, messages: BatchMessage[]): Promise<void> {
    const host = this.#host;
    if (!host.state().syncing && messages.some((message) => message.type === 'sync_data')) host.syncStarted();
    const batches = messages.map((message) => ({ changes: batchChanges(message), lsn: message.lsn }));
    for (const message of messages) {
      if (message.lsn === undefined) continue;
      for (const id of batchOperations(message)) session.outbox.carriedBy(id, message.lsn);
    }
    const covering = session.outbox.coveredBy(highestLSN(batches) ?? session.store.lastLSN);
    const { results, settled, segment, failure } = host.onPage()
      ? { ...await this.#pageApply.apply(session.store, batches, covering), segment: undefined }
      : { ...await session.store.applyBatches(batches, covering), failure: undefined };
    // Committed to a database that was lost since: the page was told it starts over.
    if (session !== host.live()) {
      session.outbox.settled(settled);
      return;
    }
    // The state catches up with the whole commit before the first event: one status for all.
    const events: WorkerPost[] = [];
    let lastChanges = -1;
    results.forEach((result, index) => {
      const { lsn } = batches[index]!;
      if (!result.applied) return;
      let { changes } = batches[index]!;
      if (result.unstorable.length > 0) {
        const skipped = new Set(result.unstorable.map((item) => item.index));
        changes = changes.filter((_, at) => !skipped.has(at));
        host.reportError({
          code: 'invalid_change',
          message: `Skipped ${result.unstorable.length} change(s) the local store cannot hold: ${result.unstorable.map((item) => item.reason).join('; ')}`,
        }, result.unstorable);
      }
      events.push({
        type: 'changes', changes, ...(lsn === undefined ? {} : { lsn: result.lastLSN }), ...(segment === undefined ? {} : { segment }),
      });
      lastChanges = events.length - 1;
      const { progress, syncing } = host.state();
      if (!syncing || !progress) {
        host.update({ lastLSN: result.lastLSN });
        return;
      }
      const next: SyncProgress = Object.freeze({ ...progress, applied: progress.applied + changes.length });
      host.update({ lastLSN: result.lastLSN, progress: next });
      events.push({ type: 'sync_progress', ...next });
    });
    if (settled.length > 0) {
      // The operations the commit covered leave the pending layer with its last batch.
      const last = events[lastChanges];
      if (last?.type === 'changes') last.settled = settled;
      else events.push({ type: 'changes', changes: [], lsn: session.store.lastLSN, settled });
    }
    for (const event of events) host.post(event);
    // After the commit's events: an acknowledgement never reaches the page before the value it covers.
    session.outbox.settled(settled);
    if (failure) throw failure;
    await this.#settleLate(session);
  }
}

/** The highest LSN among the batches, if any has one. */
function highestLSN(batches: readonly { lsn?: LSN | undefined }[]): LSN | undefined {
  let highest: LSN | undefined;
  for (const { lsn } of batches) if (lsn !== undefined && (highest === undefined || compareLSN(lsn, highest) > 0)) highest = lsn;
  return highest;
}
