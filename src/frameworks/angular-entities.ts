/**
 * `injectEntities` for Angular 19 and later: a signal of the rows of a live query, which follows
 * the element a `viewChild` query finds and stops with the injector's `DestroyRef`.
 */
import { assertInInjectionContext, effect, ElementRef, inject, Injector, signal, untracked, type Signal } from '@angular/core';
import type { ObserveOptions } from '../client/live-query.ts';
import type { SyncEntity } from '../client/pending-layer.ts';
import { type EntitySource, LiveRows, NO_ROWS } from './live-rows.ts';

/** The source as a component may hold it: the element, an `ElementRef` to it (what `viewChild` gives), or nothing yet. */
export type EntitySourceInput = EntitySource | ElementRef<EntitySource> | null | undefined;

export interface InjectEntitiesOptions extends ObserveOptions {
  /** Where the query lives and when it stops; needed outside an injection context. */
  injector?: Injector;
}

function unwrap(input: EntitySourceInput): EntitySource | undefined {
  return (input instanceof ElementRef ? input.nativeElement : input) ?? undefined;
}

/**
 * The entities of one type as the page sees them (pending writes included, marked `pending`),
 * kept up to date: a live query (`observe`) on the `<sync-connection>` that `source` gives, or on
 * a `WorkerSyncService`. The signal gets a new frozen array once per change that alters the
 * result; a row that did not change is the same object as before. Until the first result it
 * holds an empty array.
 *
 * `source` and `entityType` may be signals (e.g. `viewChild<ElementRef<SyncConnectionElement>>('sync')`):
 * the query starts when the element is there, moves to another one (its rows start empty) and
 * stops when it is gone (the rows empty). The options are read once; derive a filter that depends
 * on a signal with `computed` over the rows. The query stops when the injector's `DestroyRef` is
 * destroyed: the component's, in an injection context (a constructor, a field initializer), or
 * that of `options.injector` elsewhere.
 *
 * @param source - The `<sync-connection>` (or a `WorkerSyncService`), an `ElementRef` to it, or a signal of either.
 * @param entityType - The entity type, e.g. `note`, or a signal of it.
 * @param options - `{ filter?(entity), sort?(a, b), limit?, injector? }`; default order: by entity id.
 * @returns A read-only signal of the rows: a frozen array of `{ entityType, entityId, data, pending? }`.
 */
export function injectEntities(
  source: EntitySourceInput | (() => EntitySourceInput),
  entityType: string | (() => string),
  options: InjectEntitiesOptions = {},
): Signal<readonly SyncEntity[]> {
  const { injector: given, ...query } = options;
  if (!given) assertInInjectionContext(injectEntities);
  const injector = given ?? inject(Injector);
  const rows = signal(NO_ROWS);
  const live = new LiveRows();
  effect(
    (onCleanup) => {
      const target = unwrap(typeof source === 'function' ? source() : source);
      const type = typeof entityType === 'function' ? entityType() : entityType;
      untracked(() => {
        rows.set(target ? live.rowsOf(target, type) : NO_ROWS);
        if (target) onCleanup(live.observe(target, type, query, () => rows.set(live.rowsOf(target, type))));
      });
    },
    { injector },
  );
  return rows.asReadonly();
}
