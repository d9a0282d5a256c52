/**
 * IndexedDB with promises, typed by a schema, for the calls the local store makes. A request's
 * promise settles inside its success or error event, so code that awaits it may go on using the
 * transaction; an error not handled aborts the transaction, as IndexedDB does. Nothing runs at
 * import.
 *
 * A schema names each object store's `key`, `value` and `indexes` (index name to index key).
 */

type Key<S, N extends keyof S> = S[N] extends { key: infer K extends IDBValidKey } ? K : never;
type Value<S, N extends keyof S> = S[N] extends { value: infer V } ? V : never;
type Indexes<S, N extends keyof S> = S[N] extends { indexes: infer I } ? I : Record<never, never>;
type IndexName<S, N extends keyof S> = keyof Indexes<S, N> & string;
type IndexKey<S, N extends keyof S, I extends IndexName<S, N>> = Indexes<S, N>[I];

/** The result of `request`, once it succeeds; its error, once it fails. */
export function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export class PromisedIndex<S, N extends keyof S, I extends IndexName<S, N>> {
  readonly #index: IDBIndex;

  constructor(index: IDBIndex) {
    this.#index = index;
  }

  get(query: IndexKey<S, N, I> | IDBKeyRange): Promise<Value<S, N> | undefined> {
    return promised(this.#index.get(query as IDBValidKey));
  }

  getKey(query: IndexKey<S, N, I> | IDBKeyRange): Promise<Key<S, N> | undefined> {
    return promised(this.#index.getKey(query as IDBValidKey)) as Promise<Key<S, N> | undefined>;
  }

  getAll(query?: IndexKey<S, N, I> | IDBKeyRange): Promise<Value<S, N>[]> {
    return promised(this.#index.getAll(query as IDBValidKey | undefined));
  }

  count(query?: IndexKey<S, N, I> | IDBKeyRange): Promise<number> {
    return promised(this.#index.count(query as IDBValidKey | undefined));
  }
}

/** A cursor over an object store; `continue()` answers the next position, or `null` at the end. */
export class PromisedCursor<S, N extends keyof S> {
  readonly #cursor: IDBCursorWithValue;

  constructor(cursor: IDBCursorWithValue) {
    this.#cursor = cursor;
  }

  get key(): Key<S, N> {
    return this.#cursor.key as Key<S, N>;
  }

  get value(): Value<S, N> {
    return this.#cursor.value as Value<S, N>;
  }

  continue(): Promise<PromisedCursor<S, N> | null> {
    const request = this.#cursor.request as IDBRequest<IDBCursorWithValue | null>;
    this.#cursor.continue();
    return promised(request).then((next) => (next ? new PromisedCursor<S, N>(next) : null));
  }
}

export class PromisedStore<S, N extends keyof S> {
  readonly #store: IDBObjectStore;

  constructor(store: IDBObjectStore) {
    this.#store = store;
  }

  get(query: Key<S, N> | IDBKeyRange): Promise<Value<S, N> | undefined> {
    return promised(this.#store.get(query));
  }

  getAll(query?: Key<S, N> | IDBKeyRange): Promise<Value<S, N>[]> {
    return promised(this.#store.getAll(query));
  }

  getAllKeys(query?: Key<S, N> | IDBKeyRange): Promise<Key<S, N>[]> {
    return promised(this.#store.getAllKeys(query)) as Promise<Key<S, N>[]>;
  }

  /** Throws at once, as IndexedDB does, when the value cannot be cloned. */
  add(value: Value<S, N>, key?: Key<S, N>): Promise<Key<S, N>> {
    return promised(this.#store.add(value, key)) as Promise<Key<S, N>>;
  }

  /** Throws at once, as IndexedDB does, when the value cannot be cloned. */
  put(value: Value<S, N>, key?: Key<S, N>): Promise<Key<S, N>> {
    return promised(this.#store.put(value, key)) as Promise<Key<S, N>>;
  }

  delete(query: Key<S, N> | IDBKeyRange): Promise<void> {
    return promised(this.#store.delete(query));
  }

  clear(): Promise<void> {
    return promised(this.#store.clear());
  }

  index<I extends IndexName<S, N>>(name: I): PromisedIndex<S, N, I> {
    return new PromisedIndex(this.#store.index(name));
  }

  async openCursor(query?: Key<S, N> | IDBKeyRange): Promise<PromisedCursor<S, N> | null> {
    const cursor = await promised(this.#store.openCursor(query));
    return cursor ? new PromisedCursor<S, N>(cursor) : null;
  }
}

export class PromisedTransaction<S, N extends keyof S & string> {
  readonly #tx: IDBTransaction;
  /** Resolves when the transaction commits; rejects when it fails or is aborted. */
  readonly done: Promise<void>;

  constructor(tx: IDBTransaction) {
    this.#tx = tx;
    this.done = new Promise((resolve, reject) => {
      const failed = (): void => reject(tx.error ?? new DOMException('The transaction was aborted', 'AbortError'));
      tx.oncomplete = () => resolve();
      tx.onerror = failed;
      tx.onabort = failed;
    });
  }

  objectStore<M extends N>(name: M): PromisedStore<S, M> {
    return new PromisedStore(this.#tx.objectStore(name));
  }

  /** The store of a transaction over one store. */
  get store(): PromisedStore<S, N> {
    return this.objectStore(this.#tx.objectStoreNames[0] as N);
  }

  abort(): void {
    this.#tx.abort();
  }
}

export class PromisedDatabase<S> {
  readonly #db: IDBDatabase;

  constructor(db: IDBDatabase) {
    this.#db = db;
  }

  transaction<N extends keyof S & string>(
    names: N | readonly N[],
    mode?: IDBTransactionMode,
    options?: IDBTransactionOptions,
  ): PromisedTransaction<S, N> {
    return new PromisedTransaction(this.#db.transaction(names as string | string[], mode, options));
  }

  get<N extends keyof S & string>(store: N, query: Key<S, N> | IDBKeyRange): Promise<Value<S, N> | undefined> {
    return this.transaction(store, 'readonly').store.get(query);
  }

  getAllFromIndex<N extends keyof S & string, I extends IndexName<S, N>>(
    store: N,
    index: I,
    query?: IndexKey<S, N, I> | IDBKeyRange,
  ): Promise<Value<S, N>[]> {
    return this.transaction(store, 'readonly').store.index(index).getAll(query);
  }

  countFromIndex<N extends keyof S & string, I extends IndexName<S, N>>(
    store: N,
    index: I,
    query?: IndexKey<S, N, I> | IDBKeyRange,
  ): Promise<number> {
    return this.transaction(store, 'readonly').store.index(index).count(query);
  }

  close(): void {
    this.#db.close();
  }
}

export interface OpenHandlers {
  /** Creates or upgrades the stores, in the `versionchange` transaction `tx`. */
  upgrade(db: IDBDatabase, oldVersion: number, tx: IDBTransaction): void | Promise<void>;
  /** An older connection has not closed yet, so this open waits for it. */
  blocked?(): void;
  /** Another connection wants a newer version or to delete the database. */
  blocking?(): void;
  /** The browser closed the connection abnormally (storage cleared, disk error). */
  terminated?(): void;
}

/** Opens (creating or upgrading) the database `name` at `version`. */
export async function openDatabase<S>(name: string, version: number, handlers: OpenHandlers): Promise<PromisedDatabase<S>> {
  const request = indexedDB.open(name, version);
  request.onupgradeneeded = (event) => void handlers.upgrade(request.result, event.oldVersion, request.transaction!);
  request.onblocked = () => handlers.blocked?.();
  const db = await promised(request);
  db.onclose = () => handlers.terminated?.();
  db.onversionchange = () => handlers.blocking?.();
  return new PromisedDatabase<S>(db);
}
