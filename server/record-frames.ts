import type { ScopeSet } from './identity.ts';
import { SharedFrame } from './outbound.ts';
import { scopedChangesFrame } from './changes-frame.ts';
import { touchedScopes } from './scopes.ts';
import type { StoredRecord } from './sync-store.ts';

/**
 * The live frames of one record. Every reader who sees the same part of it shares one frame, built
 * once and held once: a reader of every scope gets the whole record; a scoped reader, what its
 * scopes see of it (keyed by which of the record's scopes those are). The writer of the record
 * gets a frame of its own that names its operation (protocol 1.2).
 */
export class RecordFrames {
  readonly record: StoredRecord;
  readonly touched: readonly string[];
  readonly #shared = new Map<string, SharedFrame>();

  constructor(record: StoredRecord) {
    this.record = record;
    this.touched = touchedScopes(record.scopes);
  }

  /** The frame for a reader of `view`; undefined when it sees nothing of the record. */
  shared(view: ScopeSet): SharedFrame | undefined {
    const seen = view.all ? [] : this.touched.filter((scope) => view.has(scope));
    if (!view.all && seen.length === 0) return undefined;
    const key = view.all ? '*' : `=${seen.join('\u0000')}`;
    let frame = this.#shared.get(key);
    if (!frame) {
      frame = new SharedFrame(scopedChangesFrame([this.record], view, this.record.lsn));
      this.#shared.set(key, frame);
    }
    return frame;
  }

  /** The writer's own frame: what it sees of the record, and its operation's id. */
  own(view: ScopeSet, operationId: string): string {
    return scopedChangesFrame([this.record], view, this.record.lsn, [operationId]);
  }
}
