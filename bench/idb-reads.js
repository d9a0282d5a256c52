// Counts IndexedDB reads in the realm it runs in (a page, before its modules, or a worker, from
// the benchmark's Node side), by wrapping the read methods of IDBObjectStore and IDBIndex.
// `globalThis.benchIdbReads` then holds: `calls` by method, `records` read (each record a getAll
// returned, a get found, or a cursor stepped onto) and `wholeType` (reads of the entity-type index
// `byType`: a whole entity type read at once, or walked by a cursor).
(() => {
  if (globalThis.benchIdbReads) return;
  const counts = { calls: {}, records: 0, wholeType: 0 };
  globalThis.benchIdbReads = counts;
  const methods = ['get', 'getKey', 'getAll', 'getAllKeys', 'getAllRecords', 'count', 'openCursor', 'openKeyCursor'];
  const recordsOf = (method, result) => {
    if (method === 'count') return 0;
    if (Array.isArray(result)) return result.length;
    return result === undefined || result === null ? 0 : 1;
  };
  for (const [name, proto] of [['store', IDBObjectStore.prototype], ['index', IDBIndex.prototype]]) {
    for (const method of methods) {
      const original = proto[method];
      if (typeof original !== 'function') continue;
      proto[method] = function (...args) {
        const key = `${name}.${method}`;
        counts.calls[key] = (counts.calls[key] ?? 0) + 1;
        if (name === 'index' && this.name === 'byType' && method !== 'count') counts.wholeType++;
        const request = original.apply(this, args);
        // A cursor's request fires `success` once per step: each step is a record read.
        request.addEventListener('success', () => { counts.records += recordsOf(method, request.result); });
        return request;
      };
    }
  }
})();
