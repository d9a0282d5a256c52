// Runs in the catch-up benchmark's page. Each variant takes the server's whole log from 0/0 into a
// fresh IndexedDB database while this page watches its own main thread (long tasks and the gaps
// between animation frames). The Node side (catchup.bench.ts) loads the server first and opens a
// fresh page for every variant.
import { deleteDatabase, inspect, openDatabase, request, toEntity, transactionDone } from './catchup-idb.js';

const wsUrl = new URL('/api/sync', location.href);
wsUrl.protocol = wsUrl.protocol.replace('http', 'ws');

/** Set by each variant: checks and deletes its database, run by `check()` after the timing. */
let afterwards;

/**
 * Starts watching the main thread: every long task (PerformanceObserver `longtask`) and a
 * requestAnimationFrame loop. `stop()` returns what fell between the start and the stop.
 */
function watchMainThread() {
  const tasks = [];
  const observer = new PerformanceObserver((list) => tasks.push(...list.getEntries()));
  observer.observe({ type: 'longtask' });
  const start = performance.now();
  let last = start;
  let longestGap = 0;
  let frames = 0;
  let gapsOver50 = 0;
  let running = true;
  const tick = () => {
    if (!running) return;
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    if (now - last > 50) gapsOver50++;
    last = now;
    frames++;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return {
    async stop() {
      const end = performance.now();
      running = false;
      longestGap = Math.max(longestGap, end - last);
      // Long-task entries are delivered after their task: give the last ones a moment.
      await new Promise((resolve) => setTimeout(resolve, 200));
      tasks.push(...observer.takeRecords());
      observer.disconnect();
      const inside = tasks.filter((t) => t.startTime < end && t.startTime + t.duration > start);
      return {
        windowMs: end - start,
        longTaskMs: inside.reduce((sum, t) => sum + t.duration, 0),
        longTasks: inside.length,
        longestTaskMs: inside.reduce((max, t) => Math.max(max, t.duration), 0),
        longTasksAt: inside.map((t) => `${Math.round(t.startTime - start)}+${Math.round(t.duration)}`),
        longestFrameGapMs: longestGap,
        gapsOver50,
        frames,
      };
    },
  };
}

async function finish(started, main) {
  const seconds = (performance.now() - started) / 1000;
  return { seconds, main: await main.stop() };
}

/** Ours: <sync-connection> inserted on a fresh database, until `sync_completed`. */
async function ours({ dbName }) {
  await customElements.whenDefined('sync-connection');
  const sync = document.createElement('sync-connection');
  sync.setAttribute('url', '/api/sync');
  sync.setAttribute('db-name', dbName);
  const completed = new Promise((resolve, reject) => {
    sync.addEventListener('sync_completed', (event) => resolve(event.detail), { once: true });
    sync.addEventListener('error', (event) => reject(new Error(`${event.detail.code}: ${event.detail.message}`)));
  });
  const main = watchMainThread();
  const started = performance.now();
  document.body.append(sync);
  const detail = await completed;
  const timing = await finish(started, main);
  // Readable from here on; the worker folds the commits into one record per entity afterwards.
  while (await unfolded(dbName) > 0) await new Promise((resolve) => setTimeout(resolve, 50));
  const foldedSeconds = (performance.now() - started) / 1000;
  afterwards = async () => {
    const stored = await inspect(dbName);
    sync.remove();
    await new Promise((resolve) => setTimeout(resolve, 100));
    return { stored, deleted: await deleteDatabase(dbName) };
  };
  return { ...timing, foldedSeconds, completedAt: detail.lsn };
}

/** How many segments (commits not folded into `entities` yet) the element's database holds. */
async function unfolded(dbName) {
  const db = await request(indexedDB.open(dbName));
  try {
    return await request(db.transaction('segments', 'readonly').objectStore('segments').count());
  } finally {
    db.close();
  }
}

/** The put a page-side design awaits for every change. */
function upsertEntity(store, change, lsn) {
  return request(store.put(toEntity(change, lsn)));
}

/** One `changes` frame the page-side way: a transaction, an awaited put per change, then the LSN. */
async function applyFrame(db, frame) {
  const tx = db.transaction(['entities', 'meta'], 'readwrite');
  const done = transactionDone(tx);
  const entities = tx.objectStore('entities');
  for (const change of frame.changes) {
    if (change.type === 'update') await upsertEntity(entities, change, frame.lsn);
    else await request(entities.delete([change.entityType, change.entityId]));
  }
  await request(tx.objectStore('meta').put(frame.lsn, 'lastLSN'));
  await done;
}

/**
 * A page-side design as a small page-side client: a raw WebSocket on the page that syncs from 0/0
 * and applies each `changes` frame in its own transaction, one awaited put per change, frames one
 * after another. Timed from opening the database to the commit of the last frame.
 */
async function pageSide({ dbName, clientId }) {
  const main = watchMainThread();
  const started = performance.now();
  const db = await openDatabase(dbName);
  const completedAt = await new Promise((resolve, reject) => {
    const socket = new WebSocket(`${wsUrl}?clientId=${encodeURIComponent(clientId)}&lastLSN=0%2F0`);
    let applying = Promise.resolve();
    socket.onopen = () => socket.send(JSON.stringify({ type: 'sync', clientId, lastLSN: '0/0' }));
    socket.onerror = () => reject(new Error('socket error'));
    socket.onclose = () => reject(new Error('socket closed before sync_complete'));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'changes') {
        applying = applying.then(() => applyFrame(db, frame));
        applying.catch(reject);
      } else if (frame.type === 'sync_complete') {
        applying.then(() => {
          socket.onclose = null;
          socket.close();
          resolve(frame.lsn);
        }, reject);
      }
    };
  });
  const timing = await finish(started, main);
  db.close();
  afterwards = async () => ({ stored: await inspect(dbName), deleted: await deleteDatabase(dbName) });
  return { ...timing, completedAt };
}

/** The physical limit: raw IndexedDB puts in a dedicated worker (see catchup-worker.js). */
async function limit({ dbName, clientId }) {
  const worker = new Worker(new URL('./catchup-worker.js', import.meta.url), { type: 'module' });
  let main;
  const result = await new Promise((resolve, reject) => {
    worker.onerror = (event) => reject(new Error(`worker: ${event.message}`));
    worker.onmessage = ({ data }) => {
      if (data.type === 'writing') main = watchMainThread();
      else if (data.type === 'done') resolve(data);
      else reject(new Error(data.error));
    };
    worker.postMessage({ wsUrl: wsUrl.href, dbName, clientId });
  });
  const mainThread = await main.stop();
  worker.terminate();
  afterwards = async () => ({ stored: await inspect(dbName), deleted: await deleteDatabase(dbName) });
  return { seconds: result.seconds, main: mainThread, transactions: result.transactions };
}

/** Checks and deletes what the last variant stored (outside its measurement). */
async function check() {
  const run = afterwards;
  afterwards = undefined;
  return run ? run() : { stored: { entities: 0 }, deleted: true };
}

window.benchCatchup = { ours, pageSide, limit, check };
