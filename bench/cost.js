// Runs in the cost benchmark's page (cost.bench.ts drives it, one fresh page per build and
// scenario). `?build=before` loads the build from before the client-speed work (served under
// /dist/before/), else the current one. The page counts its own IndexedDB writes and
// transactions, and has the element's worker count its own: the element's `new Worker(...)`
// gets a module that imports the counting first and the element's worker chunk after it.
import { CHANNEL, countIndexedDB, zeroCounts } from './idb-counting.js';

const build = new URLSearchParams(location.search).get('build') === 'before' ? 'before' : 'ours';
const pageCounts = countIndexedDB(window, 'page');
const workerEntry = new URL('./idb-counting-worker.js', import.meta.url).href;

/** The element's worker, with counting imported ahead of it. */
class CountedWorker extends Worker {
  constructor(url, options) {
    const href = new URL(url, location.href).href;
    if (!/\/sync-worker[-\w]*\.js$/.test(href)) {
      super(url, options);
      return;
    }
    const source = `import ${JSON.stringify(workerEntry)};\nimport ${JSON.stringify(href)};\n`;
    super(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })), options);
  }
}
window.Worker = CountedWorker;
await import(build === 'before' ? '/dist/before/sync-connection.js' : '/dist/sync-connection.js');
await customElements.whenDefined('sync-connection');

let sync;
let dbName;

/** The page's and the worker's counters now (the worker answers over the channel). */
async function readCounts() {
  const channel = new BroadcastChannel(CHANNEL);
  try {
    const worker = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the worker did not report its IndexedDB counts')), 5_000);
      channel.onmessage = ({ data }) => {
        if (data?.type !== 'counts' || data.where !== 'worker') return;
        clearTimeout(timer);
        resolve(data.counts);
      };
      channel.postMessage({ type: 'read' });
    });
    return { page: { ...pageCounts.counts }, worker };
  } finally {
    channel.close();
  }
}

function difference(after, before) {
  const out = {};
  for (const where of ['page', 'worker']) {
    out[where] = zeroCounts();
    for (const key of Object.keys(out[where])) out[where][key] = after[where][key] - before[where][key];
  }
  return out;
}

/** One IndexedDB request as a promise. */
function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * Whether the element has nothing left to write: the resume point is `head`, the outbox is
 * empty and (in the current build) no segment waits to be folded. Read with the page's
 * counting paused, so the bench's own transaction is not counted.
 */
async function settled(head) {
  pageCounts.paused = true;
  let db;
  try {
    db = await request(indexedDB.open(dbName));
  } finally {
    pageCounts.paused = false;
  }
  try {
    pageCounts.paused = true;
    const names = ['meta', 'outbox', ...(db.objectStoreNames.contains('segments') ? ['segments'] : [])];
    const tx = db.transaction(names, 'readonly');
    const reads = [tx.objectStore('meta').get('lastLSN'), tx.objectStore('outbox').count(),
      ...(names.includes('segments') ? [tx.objectStore('segments').count()] : [])].map(request);
    pageCounts.paused = false;
    const [lastLSN, queued, segments = 0] = await Promise.all(reads);
    return typeof lastLSN === 'string' && lastLSN.toUpperCase() === head.toUpperCase() && queued === 0 && segments === 0;
  } finally {
    pageCounts.paused = false;
    db.close();
  }
}

async function untilSettled(head, timeoutMs = 120_000) {
  const deadline = performance.now() + timeoutMs;
  while (!(await settled(head))) {
    if (performance.now() > deadline) throw new Error(`${build}: not settled at ${head} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Inserts the element on a fresh database and resolves at its first `sync_completed`. */
function connect(name) {
  dbName = name;
  sync = document.createElement('sync-connection');
  sync.setAttribute('url', '/api/sync');
  sync.setAttribute('db-name', name);
  const completed = new Promise((resolve, reject) => {
    sync.addEventListener('sync_completed', resolve, { once: true });
    sync.addEventListener('error', (event) => reject(new Error(`${event.detail.code}: ${event.detail.message}`)));
  });
  document.body.append(sync);
  return completed;
}

/**
 * Catch-up: the server's log (its head is `head`) into a fresh database, until all is written and
 * folded; with the counts at `sync_completed`, when the element's reads see the whole log.
 */
async function catchUp({ name, head }) {
  const started = performance.now();
  await connect(name);
  // Readable from here on: the trace is cut at this mark.
  performance.mark('bench-readable');
  const readable = { seconds: (performance.now() - started) / 1000, counts: await readCounts() };
  await untilSettled(head);
  return { build, seconds: (performance.now() - started) / 1000, counts: await readCounts(), readable };
}

/** Connects, so that the operations measured next start on a live element. */
async function connectForOperations({ name }) {
  await connect(name);
}

/** `count` operations queued at once, until every one is acknowledged and all is written. */
async function operations({ count, entityType }) {
  const before = await readCounts();
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, (_, i) => sync.queueOperation({
    type: 'upsert', id: `${entityType}-${i}`, payload: { entityType, entityId: String(i), data: { i, text: 'x'.repeat(100) } },
  })));
  const acknowledged = (performance.now() - started) / 1000;
  const { lsn } = await (await fetch('/api/stats')).json();
  await untilSettled(lsn);
  return { build, acknowledged, seconds: (performance.now() - started) / 1000, counts: difference(await readCounts(), before) };
}

/** Removes the element and deletes its database (outside any measurement). */
async function cleanup() {
  sync?.remove();
  sync = undefined;
  await new Promise((resolve) => setTimeout(resolve, 100));
  await new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(dbName);
    req.onsuccess = req.onerror = req.onblocked = resolve;
  });
}

window.benchCost = { catchUp, connectForOperations, operations, cleanup };
