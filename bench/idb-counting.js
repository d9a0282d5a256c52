// Bench-only instrumentation, never part of the shipped bundle: counts the IndexedDB requests
// that write and the transactions a global (the page, or the element's worker) makes, by
// wrapping the IndexedDB prototypes of that global. The idb wrapper calls these same methods,
// so everything the element does is counted. Another global reads the counts over the
// BroadcastChannel `CHANNEL` (the worker's are reachable no other way without touching its code).

export const CHANNEL = 'bench-idb-counts';

/** A fresh set of counters, all zero. */
export function zeroCounts() {
  return { put: 0, add: 0, delete: 0, clear: 0, cursorUpdate: 0, cursorDelete: 0, readwrite: 0, readonly: 0 };
}

/**
 * Wraps the IndexedDB prototypes of `scope` and answers `{ type: 'read' }` on `CHANNEL` with
 * `{ type: 'counts', where, counts }`. Returns the live counters and `paused`: a bench reading
 * the database itself sets it so that its own transactions are not counted.
 */
export function countIndexedDB(scope, where) {
  const state = { where, counts: zeroCounts(), paused: false };
  const wrap = (proto, method, count) => {
    const original = proto[method];
    proto[method] = function counted(...args) {
      if (!state.paused) count(args);
      return original.apply(this, args);
    };
  };
  const bump = (name) => () => { state.counts[name] += 1; };
  wrap(scope.IDBObjectStore.prototype, 'put', bump('put'));
  wrap(scope.IDBObjectStore.prototype, 'add', bump('add'));
  wrap(scope.IDBObjectStore.prototype, 'delete', bump('delete'));
  wrap(scope.IDBObjectStore.prototype, 'clear', bump('clear'));
  wrap(scope.IDBCursor.prototype, 'update', bump('cursorUpdate'));
  wrap(scope.IDBCursor.prototype, 'delete', bump('cursorDelete'));
  wrap(scope.IDBDatabase.prototype, 'transaction', ([, mode]) => {
    state.counts[mode === 'readwrite' ? 'readwrite' : 'readonly'] += 1;
  });
  const channel = new scope.BroadcastChannel(CHANNEL);
  channel.onmessage = ({ data }) => {
    if (data?.type === 'read') channel.postMessage({ type: 'counts', where, counts: { ...state.counts } });
  };
  return state;
}
