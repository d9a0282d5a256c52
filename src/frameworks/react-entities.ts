/**
 * `useEntities` for React 18 and later, on `useSyncExternalStore`: the live query starts in
 * `subscribe` (after the commit, never during a render) and stops in its cleanup.
 */
import { useCallback, useState, useSyncExternalStore } from 'react';
import type { ObserveOptions } from '../client/live-query.ts';
import type { SyncEntity } from '../client/pending-layer.ts';
import { type EntitySource, LiveRows, NO_ROWS } from './live-rows.ts';

/** A ref to the source, as `useRef<SyncConnectionElement>(null)` makes one. */
export interface EntitySourceRef {
  readonly current: EntitySource | null | undefined;
}

function isSource(value: EntitySource | EntitySourceRef): value is EntitySource {
  return typeof (value as Partial<EntitySource>).observe === 'function';
}

const serverSnapshot = (): readonly SyncEntity[] => NO_ROWS;

/**
 * The entities of one type as the page sees them (pending writes included, marked `pending`),
 * kept up to date: a live query (`observe`) on the `<sync-connection>` the ref points to, or on a
 * `WorkerSyncService`. The component renders again once per change that alters the result, with a
 * new frozen array in which a row that did not change is the same object as before; between
 * changes every render gets the same array. Until the first result (a microtask once the type is
 * in memory) the rows are an empty array.
 *
 * The query starts after the component mounts and stops when it unmounts (React's StrictMode
 * mounts twice: the first query is stopped, nothing is left behind). It starts again when
 * `entityType`, the source or an option changes; the rows of the same source and type stay until
 * the new query's first result.
 *
 * Options are compared by their parts (`filter`, `sort`, `limit`), not by the object, so
 * `{ limit: 20 }` written inline is fine. Functions must keep their identity from render to
 * render, or the query restarts on every render: define them outside the component, or wrap them
 * in `useCallback` with the values they read as dependencies.
 *
 * A ref is read when the query starts. If the element mounts later than the component that calls
 * the hook, pass the element itself (kept in state by a callback ref) instead of a ref.
 *
 * @param source - A ref to the `<sync-connection>` (or the element, or a `WorkerSyncService`); nothing is observed while it is empty.
 * @param entityType - The entity type, e.g. `note`.
 * @param options - `{ filter?(entity), sort?(a, b), limit? }` as `observe` takes them; default order: by entity id.
 * @returns The rows: a frozen array of `{ entityType, entityId, data, pending? }`.
 */
export function useEntities(
  source: EntitySource | EntitySourceRef | null | undefined,
  entityType: string,
  options?: ObserveOptions,
): readonly SyncEntity[] {
  const [live] = useState(() => new LiveRows());
  const { filter, sort, limit } = options ?? {};
  const subscribe = useCallback(
    (changed: () => void) => {
      const target = source && (isSource(source) ? source : source.current);
      if (!target) return () => {};
      return live.observe(target, entityType, { filter, sort, limit }, changed, source);
    },
    [live, source, entityType, filter, sort, limit],
  );
  const snapshot = useCallback(() => (source ? live.rowsOf(source, entityType) : NO_ROWS), [live, source, entityType]);
  return useSyncExternalStore(subscribe, snapshot, serverSnapshot);
}
