/**
 * One live query over the entities of one type: the rows that pass `filter`, in `sort` order, at
 * most `limit` of them. It moves by deltas (an entity's record before and after) and tells its
 * listener once per round of deltas, with what was added, updated and removed; a row that did not
 * change keeps its object identity.
 */
import type { SyncEntity } from './pending-layer.ts';

export interface ObserveOptions {
  /** Keeps the entities for which it returns true. */
  filter?: (entity: SyncEntity) => boolean;
  /** Orders the rows (ties are ordered by entity id); default: by entity id. */
  sort?: (a: SyncEntity, b: SyncEntity) => number;
  /** At most this many rows, the first in sort order. */
  limit?: number;
}

/** What changed in `rows` since the listener's previous call. */
export interface ObserveDelta {
  readonly added: readonly SyncEntity[];
  readonly updated: readonly SyncEntity[];
  readonly removed: readonly SyncEntity[];
}

export type ObserveListener = (rows: readonly SyncEntity[], delta: ObserveDelta) => void;

/** One entity's record before and after a change; undefined where it is absent. */
export interface EntityDelta {
  readonly entityId: string;
  readonly before: SyncEntity | undefined;
  readonly after: SyncEntity | undefined;
}

/** Checks `observe`'s arguments; throws a TypeError that says what is wrong. */
export function checkObserveArguments(entityType: unknown, listener: unknown, options: unknown): ObserveOptions {
  if (typeof entityType !== 'string' || entityType === '') throw new TypeError('observe(entityType, listener): entityType must be a non-empty string');
  if (typeof listener !== 'function') throw new TypeError('observe(entityType, listener): listener must be a function');
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw new TypeError('observe(entityType, listener, options): options must be an object');
  const { filter, sort, limit } = options as Record<string, unknown>;
  if (filter !== undefined && typeof filter !== 'function') throw new TypeError('observe options: filter must be a function');
  if (sort !== undefined && typeof sort !== 'function') throw new TypeError('observe options: sort must be a function');
  if (limit !== undefined && !(typeof limit === 'number' && Number.isInteger(limit) && limit >= 0)) {
    throw new TypeError('observe options: limit must be a whole number, 0 or more');
  }
  return options as ObserveOptions;
}

function byId(a: SyncEntity, b: SyncEntity): number {
  return a.entityId < b.entityId ? -1 : a.entityId > b.entityId ? 1 : 0;
}

const EMPTY: readonly SyncEntity[] = Object.freeze([]);

export class LiveQuery {
  readonly #options: ObserveOptions;
  readonly #listener: ObserveListener;
  readonly #report: (error: unknown) => void;
  readonly #compare: (a: SyncEntity, b: SyncEntity) => number;
  /** Every entity that passes the filter, in order. */
  #matched: SyncEntity[] = [];
  /** What the listener was last given. */
  #rows: readonly SyncEntity[] = EMPTY;
  /** Changes since the last call, by entity id: in `#matched` before the first, and after the last. */
  readonly #dirty = new Map<string, { before: SyncEntity | undefined; after: SyncEntity | undefined }>();
  #started = false;
  #notified = false;
  #scheduled = false;
  #closed = false;

  constructor(options: ObserveOptions, listener: ObserveListener, report: (error: unknown) => void) {
    this.#options = options;
    this.#listener = listener;
    this.#report = report;
    const { sort } = options;
    this.#compare = sort ? (a, b) => sort(a, b) || byId(a, b) : byId;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The first result: every visible entity of the type. The listener hears of it in a microtask. */
  start(entities: Iterable<SyncEntity>): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    const matched: SyncEntity[] = [];
    for (const entity of entities) if (this.#passes(entity)) matched.push(entity);
    this.#sortAll(matched);
    this.#matched = matched;
    this.#schedule();
  }

  /** Moves the result by these deltas; the listener hears of them in a microtask, together. */
  update(deltas: readonly EntityDelta[]): void {
    if (!this.#started || this.#closed) return;
    for (const { entityId, before, after } of deltas) {
      const removed = before !== undefined && this.#remove(before);
      const added = after !== undefined && this.#passes(after) && (this.#insert(after), true);
      if (!removed && !added) continue;
      const entry = this.#dirty.get(entityId);
      if (entry) entry.after = added ? after : undefined;
      else this.#dirty.set(entityId, { before: removed ? before : undefined, after: added ? after : undefined });
    }
    if (this.#dirty.size > 0) this.#schedule();
  }

  close(): void {
    this.#closed = true;
    this.#dirty.clear();
    this.#matched = [];
  }

  #passes(entity: SyncEntity): boolean {
    const { filter } = this.#options;
    if (!filter) return true;
    try {
      return Boolean(filter(entity));
    } catch (error) {
      this.#report(error);
      return false;
    }
  }

  #sortAll(entities: SyncEntity[]): void {
    try {
      entities.sort(this.#compare);
    } catch (error) {
      this.#report(error);
    }
  }

  /** Where `entity` goes in `#matched`: after every row that orders before or equal to it. */
  #position(entity: SyncEntity): number {
    let low = 0;
    let high = this.#matched.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#order(this.#matched[mid]!, entity) <= 0) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #order(a: SyncEntity, b: SyncEntity): number {
    try {
      return this.#compare(a, b);
    } catch (error) {
      this.#report(error);
      return byId(a, b);
    }
  }

  #insert(entity: SyncEntity): void {
    this.#matched.splice(this.#position(entity), 0, entity);
  }

  /** Removes this very record if it is a row; false when it is not. */
  #remove(entity: SyncEntity): boolean {
    // The record sorts just before its insertion point; a comparator that is not consistent
    // (it read something that changed) falls back to a scan.
    const at = this.#position(entity) - 1;
    const found = this.#matched[at] === entity ? at : this.#matched.indexOf(entity);
    if (found < 0) return false;
    this.#matched.splice(found, 1);
    return true;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#notify();
    });
  }

  #notify(): void {
    if (this.#closed) return;
    const { limit } = this.#options;
    const previous = this.#rows;
    const rows = Object.freeze(limit === undefined ? this.#matched.slice() : this.#matched.slice(0, limit));
    const delta = !this.#notified
      ? { added: rows, updated: EMPTY, removed: EMPTY }
      : limit === undefined ? this.#dirtyDelta() : diffRows(previous, rows);
    this.#dirty.clear();
    if (this.#notified && delta.added.length === 0 && delta.updated.length === 0 && delta.removed.length === 0) return;
    this.#notified = true;
    this.#rows = rows;
    try {
      this.#listener(rows, Object.freeze(delta));
    } catch (error) {
      this.#report(error);
    }
  }

  #dirtyDelta(): ObserveDelta {
    const added: SyncEntity[] = [];
    const updated: SyncEntity[] = [];
    const removed: SyncEntity[] = [];
    for (const { before, after } of this.#dirty.values()) {
      if (before === after) continue;
      if (!before) added.push(after!);
      else if (!after) removed.push(before);
      else updated.push(after);
    }
    return { added, updated, removed };
  }
}

/**
 * What differs between two lists of rows, by entity id; a row is updated when `same` says it is
 * not the same (by default: when it is another object).
 */
export function diffRows(
  previous: readonly SyncEntity[],
  rows: readonly SyncEntity[],
  same: (a: SyncEntity, b: SyncEntity) => boolean = (a, b) => a === b,
): ObserveDelta {
  const before = new Map(previous.map((row) => [row.entityId, row]));
  const added: SyncEntity[] = [];
  const updated: SyncEntity[] = [];
  for (const row of rows) {
    const old = before.get(row.entityId);
    before.delete(row.entityId);
    if (!old) added.push(row);
    else if (!same(old, row)) updated.push(row);
  }
  return { added, updated, removed: [...before.values()] };
}
