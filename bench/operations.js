// Runs in the benchmark page. Measures operations from the call to the server's acknowledgement:
// through <sync-connection> (IndexedDB outbox, worker, socket) and, as the baseline in the same
// run, over a plain WebSocket from the page with no durability at all.

const wsUrl = new URL('/api/sync', location.href);
wsUrl.protocol = wsUrl.protocol.replace('http', 'ws');

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summarise(latencies, elapsed) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    count: sorted.length,
    seconds: elapsed / 1000,
    perSecond: sorted.length / (elapsed / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

function upsert(prefix, i) {
  return { type: 'upsert', id: `${prefix}-${i}`, payload: { entityType: prefix, entityId: String(i), data: { i, text: 'x'.repeat(100) } } };
}

/** A database with one store, for the durable baseline. */
async function openScratch(name) {
  await new Promise((resolve) => { const r = indexedDB.deleteDatabase(name); r.onsuccess = r.onerror = r.onblocked = resolve; });
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore('outbox', { keyPath: 'id' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** One strict-durability put, resolved once committed. */
function durablePut(db, value) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction('outbox', 'readwrite', { durability: 'strict' });
    tx.objectStore('outbox').put(value);
    tx.oncomplete = resolve;
    tx.onerror = tx.onabort = () => reject(tx.error);
  });
}

/**
 * The baseline: operation frames over a raw socket, acknowledged by the same server. With `db`,
 * each operation is first put durably in it: the least a client that stores before it sends pays.
 */
async function rawSocket(prefix, count, sequential, db) {
  const socket = new WebSocket(`${wsUrl}?clientId=${prefix}&lastLSN=0%2F0`);
  const acks = new Map();
  let live;
  const caughtUp = new Promise((resolve) => { live = resolve; });
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'operation_complete') acks.get(frame.id)?.();
    else if (frame.type === 'sync_complete') live();
  };
  // A server takes operations only after a sync (docs/protocol.md section 5), as the element sends one.
  socket.send(JSON.stringify({ type: 'sync', clientId: prefix, lastLSN: '0/0' }));
  await caughtUp;
  const send = async (i) => {
    const op = upsert(prefix, i);
    if (db) await durablePut(db, op);
    return new Promise((resolve) => {
      acks.set(op.id, resolve);
      socket.send(JSON.stringify({ type: 'operation', operation: op }));
    });
  };
  const result = await measure(count, sequential, send);
  socket.close();
  return result;
}

async function measure(count, sequential, run) {
  const latencies = new Array(count);
  const start = performance.now();
  if (sequential) {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await run(i);
      latencies[i] = performance.now() - t0;
    }
  } else {
    await Promise.all(Array.from({ length: count }, (_, i) => {
      const t0 = performance.now();
      return run(i).then(() => { latencies[i] = performance.now() - t0; });
    }));
  }
  return summarise(latencies, performance.now() - start);
}

async function element(prefix, count, sequential) {
  const sync = document.createElement('sync-connection');
  sync.setAttribute('url', '/api/sync');
  sync.setAttribute('db-name', `bench-${prefix}`);
  document.body.append(sync);
  await new Promise((resolve) => sync.addEventListener('sync_completed', resolve, { once: true }));
  const result = await measure(count, sequential, (i) => sync.queueOperation(upsert(prefix, i)));
  sync.remove();
  await new Promise((resolve) => { const r = indexedDB.deleteDatabase(`bench-${prefix}`); r.onsuccess = r.onerror = r.onblocked = resolve; });
  return result;
}

export async function run({ burst, sequential }) {
  await customElements.whenDefined('sync-connection');
  return {
    burst: {
      ours: await element('burst', burst, false),
      baseline: await rawSocket('raw-burst', burst, false),
    },
    sequential: {
      ours: await element('seq', sequential, true),
      baseline: await rawSocket('raw-seq', sequential, true),
      durable: await rawSocket('raw-durable-seq', sequential, true, await openScratch('bench-durable')),
    },
  };
}

window.benchOperations = run;
