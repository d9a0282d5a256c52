/**
 * The server's changes the worker has committed and not folded into `entities` yet, as this page
 * knows them: read once from the segments, then moved by every commit (`changes`, with its
 * segment) and every fold (`folded`) the worker reports. A read of `entities` made together with
 * `meta.foldedThrough` is brought up to date by the entries of later segments.
 */
import type { StoredEntity, StoredSegment } from '../db/schema.ts';
import { storedEntity } from '../db/records.ts';
import type { Change } from '../protocol/change.ts';
import type { LSN } from '../protocol/lsn.ts';

/** The latest change to one entity: its record (undefined for a delete) and its segment. */
export interface RecentEntry {
  record: StoredEntity | undefined;
  segment: number;
}

export class RecentChanges {
  readonly #byType = new Map<string, Map<string, RecentEntry>>();
  /** The last segment a fold this page heard of covered. */
  #folded = 0;

  /** One committed batch, in segment `segment`. */
  apply(changes: readonly Change[], lsn: LSN | undefined, segment: number): void {
    if (segment <= this.#folded) return;
    for (const change of changes) {
      let ids = this.#byType.get(change.entityType);
      if (!ids) this.#byType.set(change.entityType, (ids = new Map()));
      const held = ids.get(change.entityId);
      if (held && held.segment > segment) continue;
      ids.set(change.entityId, { record: change.type === 'update' ? storedEntity(change, lsn) : undefined, segment });
    }
  }

  /** The segments read from the store (oldest first): what this page has not heard yet, or has. */
  load(segments: readonly [number, StoredSegment][], foldedThrough: number): void {
    this.folded(foldedThrough);
    for (const [key, segment] of segments) {
      for (const { changes, lsn } of segment.batches) this.apply(changes, lsn, key);
    }
  }

  /** Segments up to `through` are in `entities` now: their entries go. */
  folded(through: number): void {
    if (through <= this.#folded) return;
    this.#folded = through;
    for (const [type, ids] of this.#byType) {
      for (const [id, entry] of ids) if (entry.segment <= through) ids.delete(id);
      if (ids.size === 0) this.#byType.delete(type);
    }
  }

  /** The store was emptied or replaced: nothing recent is left, and no fold is known. */
  clear(): void {
    this.#byType.clear();
    this.#folded = 0;
  }

  /** The latest change to one entity newer than `foldedThrough`, if any. */
  get(entityType: string, entityId: string, foldedThrough: number): RecentEntry | undefined {
    const entry = this.#byType.get(entityType)?.get(entityId);
    return entry && entry.segment > foldedThrough ? entry : undefined;
  }

  /**
   * `folded` (a read of one type's entities made with `foldedThrough`) brought up to date: each
   * entity changed in a later segment replaced (or removed), in entity id order.
   */
  merge(entityType: string, folded: StoredEntity[], foldedThrough: number): StoredEntity[] {
    const ids = this.#byType.get(entityType);
    if (!ids || ids.size === 0) return folded;
    const newer = new Map<string, RecentEntry>();
    for (const [id, entry] of ids) if (entry.segment > foldedThrough) newer.set(id, entry);
    if (newer.size === 0) return folded;
    const merged: StoredEntity[] = [];
    for (const entity of folded) {
      const entry = newer.get(entity.entityId);
      if (!entry) merged.push(entity);
      else if (entry.record) merged.push(entry.record);
      newer.delete(entity.entityId);
    }
    // What is left is new to the folded read: added, then all put back in id order.
    let added = false;
    for (const entry of newer.values()) {
      if (!entry.record) continue;
      merged.push(entry.record);
      added = true;
    }
    return added ? merged.sort((a, b) => (a.entityId < b.entityId ? -1 : a.entityId > b.entityId ? 1 : 0)) : merged;
  }
}
