/**
 * `useEntities` for Vue 3.3 and later: a read-only shallow ref of the rows of a live query, which
 * follows the element the template ref points to.
 */
import { shallowReadonly, shallowRef, toValue, watch, type MaybeRefOrGetter, type ShallowRef } from 'vue';
import type { ObserveOptions } from '../client/live-query.ts';
import type { SyncEntity } from '../client/pending-layer.ts';
import { type EntitySource, LiveRows, NO_ROWS } from './live-rows.ts';

/**
 * The entities of one type as the page sees them (pending writes included, marked `pending`),
 * kept up to date: a live query (`observe`) on the `<sync-connection>` that `source` holds (a
 * template ref, a ref, a getter), or on a `WorkerSyncService`. The ref gets a new frozen array
 * once per change that alters the result; a row that did not change is the same object as before,
 * and no row is made a reactive proxy. Until the first result it holds an empty array.
 *
 * The query follows `source`: it starts when the element is there (mounted later is fine), moves
 * to another element that replaces it (its rows start empty), and stops when it is gone (the rows
 * empty). It starts again when `entityType` or an option changes (each may be a ref or a getter);
 * the rows stay until the new query's first result. Call it in `setup()` or inside an
 * `effectScope()`: the query stops when that scope is disposed (the component unmounted).
 *
 * @param source - The `<sync-connection>` element (or a `WorkerSyncService`), a ref to it, or a getter.
 * @param entityType - The entity type, e.g. `note`, or a ref or getter of it.
 * @param options - `{ filter?(entity), sort?(a, b), limit? }` as `observe` takes them, or a ref or getter of them.
 * @returns A read-only shallow ref of the rows: a frozen array of `{ entityType, entityId, data, pending? }`.
 */
export function useEntities(
  source: MaybeRefOrGetter<EntitySource | null | undefined>,
  entityType: MaybeRefOrGetter<string>,
  options?: MaybeRefOrGetter<ObserveOptions | undefined>,
): Readonly<ShallowRef<readonly SyncEntity[]>> {
  const rows = shallowRef(NO_ROWS);
  const live = new LiveRows();
  const option = <K extends keyof ObserveOptions>(key: K) => () => toValue(options)?.[key];
  watch(
    [() => toValue(source), () => toValue(entityType), option('filter'), option('sort'), option('limit')],
    ([target, type, filter, sort, limit], _previous, onCleanup) => {
      if (!target) {
        rows.value = NO_ROWS;
        return;
      }
      rows.value = live.rowsOf(target, type);
      onCleanup(live.observe(target, type, { filter, sort, limit }, () => (rows.value = live.rowsOf(target, type))));
    },
    { immediate: true },
  );
  return shallowReadonly(rows);
}
