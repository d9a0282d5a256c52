// Runs in the live-query benchmark's pages: one or two tabs of one database. Each measurement
// waits for rows by a `seq` written into their data, and is told of them by a reporter that a
// watcher feeds: a live query (`observe`, ours), today's pattern (`getEntities` again on every
// `changes` and `operation_complete` event), a raw WebSocket, or, across tabs, this page's
// BroadcastChannel. Wall-clock times (`timeOrigin + now()`) so that two tabs can compare them.
import { openDatabase as openEntities, transactionDone } from './catchup-idb.js';

const now = () => performance.timeOrigin + performance.now();
/** Between one write (or server change) settling and the next: a quick user, and the last re-reads done. */
const GAP_MS = 20;
const TEXT = 'a note of about a hundred bytes, written by the live-query benchmark to one of its notes.';
const channel = new BroadcastChannel('bench-live');

/** @type {HTMLElement & Record<string, Function>} */
let sync;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- IndexedDB reads in this page (counted by idb-reads.js) ----------------------------------------

function reads() {
  const { calls, records, wholeType } = globalThis.benchIdbReads;
  return { calls: Object.values(calls).reduce((sum, n) => sum + n, 0), records, wholeType, byMethod: { ...calls } };
}

function readsSince(before) {
  const after = reads();
  const byMethod = {};
  for (const [method, n] of Object.entries(after.byMethod)) {
    if (n !== (before.byMethod[method] ?? 0)) byMethod[method] = n - (before.byMethod[method] ?? 0);
  }
  return { calls: after.calls - before.calls, records: after.records - before.records, wholeType: after.wholeType - before.wholeType, byMethod };
}

// ---- waiting for a seq ----------------------------------------------------------------------------

/**
 * What is awaited, by seq, each a promise of the time it happened: `seen` (a watcher first showed
 * the row with that seq), `settled` (shown without `pending`), `committed` (this tab's `changes`
 * event carried it), `raw` (a raw WebSocket on this page received it), `posted` (this tab's
 * element posted its tab message carrying it) and `relayed` (that message reached the other
 * tab). `times` holds those that happened.
 */
class Expectations {
  #entries = new Map();

  for(seq) {
    const entry = { times: {}, resolve: {} };
    for (const kind of ['seen', 'settled', 'committed', 'raw', 'posted', 'relayed']) {
      entry[kind] = new Promise((resolve) => { entry.resolve[kind] = resolve; });
    }
    this.#entries.set(seq, entry);
    return entry;
  }

  done(seq) {
    this.#entries.delete(seq);
  }

  told({ kind, seq, at }) {
    const entry = this.#entries.get(seq);
    if (!entry || kind in entry.times) return;
    entry.times[kind] = at;
    entry.resolve[kind](at);
  }
}

const expected = new Expectations();

/** Tells `seen` and `settled`, once each, for every row it is shown whose seq is of `phase`. */
function reporter(phase, tell) {
  const prefix = `${phase}:`;
  const seen = new Set();
  const settled = new Set();
  return (rows, at) => {
    for (const row of rows) {
      const seq = row?.data?.seq;
      if (typeof seq !== 'string' || !seq.startsWith(prefix)) continue;
      if (!seen.has(seq)) {
        seen.add(seq);
        tell({ kind: 'seen', seq, at });
      }
      if (!row.pending && !settled.has(seq)) {
        settled.add(seq);
        tell({ kind: 'settled', seq, at });
      }
    }
  };
}

/**
 * Shows the rows of `entityType` to `report`, by `mode`: `observe` (the added and updated rows of
 * each call after the first) or `reread` (the whole type, read again on every `changes` and
 * `operation_complete` event). Resolves, once watching, with the function that stops it.
 */
async function watchRows(entityType, mode, report) {
  if (mode === 'observe') {
    let first;
    const ready = new Promise((resolve) => { first = resolve; });
    const stop = sync.observe(entityType, (rows, { added, updated }) => {
      const at = now();
      if (first) {
        first();
        first = undefined;
        return;
      }
      report(added, at);
      report(updated, at);
    });
    await ready;
    return stop;
  }
  const abort = new AbortController();
  const reread = async () => {
    const rows = await sync.getEntities(entityType);
    report(rows, now());
  };
  sync.addEventListener('changes', reread, { signal: abort.signal });
  sync.addEventListener('operation_complete', reread, { signal: abort.signal });
  return () => abort.abort();
}

/** A raw WebSocket from the head of the log: shows every change's data as a row, nothing stored. */
async function watchSocket(report) {
  const { lsn } = await (await fetch('/api/stats')).json();
  const url = new URL('/api/sync', location.href);
  url.protocol = url.protocol.replace('http', 'ws');
  url.searchParams.set('clientId', `bench-live-raw-${crypto.randomUUID()}`);
  url.searchParams.set('lastLSN', lsn);
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onerror = () => reject(new Error('raw socket failed'));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'sync_complete') resolve();
      if (frame.type === 'changes') report(frame.changes, now());
    };
    socket.onopen = () => socket.send(JSON.stringify({ type: 'sync', clientId: 'bench-live-raw', lastLSN: lsn }));
  });
  return () => socket.close();
}

// ---- the element ------------------------------------------------------------------------------------

/** Inserts <sync-connection> on `dbName`; resolves when it leads and caught up, or follows a connected leader. */
async function start({ dbName, lead }) {
  await customElements.whenDefined('sync-connection');
  sync = document.createElement('sync-connection');
  sync.setAttribute('url', '/api/sync');
  sync.setAttribute('db-name', dbName);
  sync.addEventListener('error', (event) => console.error(`sync-connection error ${event.detail.code}: ${event.detail.message}`));
  sync.addEventListener('changes', (event) => {
    const at = now();
    for (const change of event.detail.changes) {
      if (typeof change.data?.seq === 'string') expected.told({ kind: 'committed', seq: change.data.seq, at });
    }
  });
  const started = performance.now();
  const ready = lead
    ? new Promise((resolve) => sync.addEventListener('sync_completed', resolve, { once: true }))
    : new Promise((resolve) => {
      const check = (state) => state.role === 'follower' && state.isConnected;
      const off = sync.onStateChange((state) => {
        if (check(state)) {
          off();
          resolve();
        }
      });
    });
  document.body.append(sync);
  await ready;
  return { seconds: (performance.now() - started) / 1000, role: sync.getState().role };
}

// ---- first result, and the heap it holds ---------------------------------------------------------------

/** Milliseconds from the call to the first result of `observe` (then stopped) or of `getEntities`. */
async function firstResult({ entityType, kind }) {
  const before = reads();
  const started = performance.now();
  let rows;
  if (kind === 'observe') {
    let stop;
    rows = await new Promise((resolve) => { stop = sync.observe(entityType, resolve); });
    stop();
  } else {
    rows = await sync.getEntities(entityType);
  }
  return { ms: performance.now() - started, rows: rows.length, reads: readsSince(before) };
}

let held;

/** Keeps a running observer of `entityType` (and its rows), or the array `getEntities` gave. */
async function hold({ entityType, kind }) {
  if (kind === 'observe') {
    let stop;
    const rows = await new Promise((resolve) => { stop = sync.observe(entityType, resolve); });
    held = { rows, stop };
  } else {
    held = { rows: await sync.getEntities(entityType), stop() {} };
  }
  return held.rows.length;
}

/** UTF-8 bytes of the held rows as JSON. */
function heldJsonBytes() {
  return new TextEncoder().encode(JSON.stringify(held.rows)).length;
}

function release() {
  held?.stop();
  held = undefined;
}

// ---- one server change to an observer --------------------------------------------------------------------

/**
 * `count` changes, one at a time, each an update of a random entity of `entityType` (of `size`)
 * posted to the server by this page; timed from the POST to the watcher (`observe` or `reread`)
 * showing it, and to a raw WebSocket on this page receiving the same change (`paired`). Also
 * when this page's `changes` event carried it, and when the POST answered.
 */
async function serverChanges({ entityType, size, count, phase, mode, paired }) {
  const report = reporter(phase, (message) => expected.told(message));
  const stop = await watchRows(entityType, mode, report);
  const raw = reporter(phase, (message) => { if (message.kind === 'seen') expected.told({ ...message, kind: 'raw' }); });
  const stopSocket = paired ? await watchSocket(raw) : () => {};
  const before = reads();
  const shown = [];
  const received = [];
  const heard = [];
  const answered = [];
  for (let i = 0; i < count; i++) {
    const seq = `${phase}:${i}`;
    const k = Math.floor(Math.random() * size);
    const change = { type: 'update', entityType, entityId: `${entityType}-${String(k).padStart(7, '0')}`, data: { n: k, seq, text: TEXT } };
    const wait = expected.for(seq);
    const started = now();
    const posted = fetch('/api/changes', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ changes: [change] }) })
      .then((response) => {
        if (!response.ok) throw new Error(`POST /api/changes: ${response.status}`);
        return now();
      });
    shown.push((await wait.seen) - started);
    heard.push((await wait.committed) - started);
    answered.push((await posted) - started);
    if (paired) received.push((await wait.raw) - started);
    expected.done(seq);
    await sleep(GAP_MS);
  }
  const counted = readsSince(before);
  stop();
  stopSocket();
  return { shown, received, heard, answered, reads: counted };
}

// ---- local writes, in this tab or another ---------------------------------------------------------------------

/** Another tab's clock minus this one's, from the ping over the channel with the shortest round trip. */
let offset = 0;

async function syncClocks() {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 30; i++) {
    const sent = now();
    const at = await new Promise((resolve) => {
      const listen = ({ data }) => {
        if (data.kind !== 'pong' || data.id !== i) return;
        channel.removeEventListener('message', listen);
        resolve(data.at);
      };
      channel.addEventListener('message', listen);
      channel.postMessage({ kind: 'ping', id: i });
    });
    const back = now();
    if (back - sent < best.rtt) best = { rtt: back - sent, offset: at - (sent + back) / 2 };
  }
  offset = best.offset;
  return best;
}

/** What this tab does when another one writes: answer pings, watch as told by `follow`. */
let following = () => {};

/**
 * Hooks on the element's own channel between tabs, each given the message and a time: `heard`
 * (set by `follow`) when a message arrives, as its task begins; `posted` (set by `localWrites`)
 * when the element posts one. The element's channel is wrapped as the element opens it: this
 * page's BroadcastChannel is a subclass that times its `onmessage` and `postMessage`.
 */
const elementChannel = { heard: undefined, posted: undefined };
const NativeChannel = BroadcastChannel;
globalThis.BroadcastChannel = class extends NativeChannel {
  set onmessage(handler) {
    super.onmessage = handler && ((event) => {
      const at = now();
      handler.call(this, event);
      elementChannel.heard?.(event.data, at);
    });
  }

  get onmessage() {
    return super.onmessage;
  }

  postMessage(message) {
    elementChannel.posted?.(message, now());
    super.postMessage(message);
  }
};

/** Tells `kind` for each seq of `phase` that an element's message carries (whatever its shape). */
function messageReporter(phase, kind, tell) {
  const told = new Set();
  const pattern = new RegExp(`"seq":"(${phase}:[0-9]+)"`, 'g');
  return (message, at) => {
    for (const [, seq] of JSON.stringify(message).matchAll(pattern)) {
      if (told.has(seq)) continue;
      told.add(seq);
      tell({ kind, seq, at });
    }
  };
}

async function follow({ phase, mode }) {
  following();
  following = () => {};
  const tell = (message) => channel.postMessage(message);
  if (mode === 'none') return;
  if (mode === 'limit') {
    const report = reporter(phase, tell);
    const listen = ({ data }) => { if (data.kind === 'put') report([data.record], now()); };
    channel.addEventListener('message', listen);
    following = () => channel.removeEventListener('message', listen);
  } else {
    const stopWatching = await watchRows('note', mode, reporter(phase, tell));
    elementChannel.heard = messageReporter(phase, 'relayed', tell);
    following = () => {
      stopWatching();
      elementChannel.heard = undefined;
    };
  }
}

channel.addEventListener('message', ({ data }) => {
  if (data.kind === 'ping') channel.postMessage({ kind: 'pong', id: data.id, at: now() });
  else if (['seen', 'settled', 'relayed'].includes(data.kind)) expected.told({ ...data, at: data.at - offset });
});

function note(phase, i, notes) {
  return { entityId: `note-${String(i % notes).padStart(7, '0')}`, data: { seq: `${phase}:${i}`, text: TEXT } };
}

/**
 * `count` upserts of notes, one at a time, timed from `queueOperation` to the watcher showing the
 * row: in this tab (`where: 'same'`, watched by `mode`) or in the tab that `follow` set up. Each
 * settles (acknowledged, its change committed, shown without `pending`) before the next.
 */
async function localWrites({ count, phase, where, mode, notes }) {
  const tell = (message) => expected.told(message);
  const stop = where === 'same' ? await watchRows('note', mode, reporter(phase, tell)) : () => {};
  elementChannel.posted = messageReporter(phase, 'posted', tell);
  const before = reads();
  const shown = [];
  const acknowledged = [];
  const posted = [];
  const relayed = [];
  const handled = [];
  for (let i = 0; i < count; i++) {
    const { entityId, data } = note(phase, i, notes);
    const wait = expected.for(data.seq);
    const started = now();
    const ack = sync.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId, data } }).then(now);
    shown.push((await wait.seen) - started);
    acknowledged.push((await ack) - started);
    await Promise.all([wait.committed, wait.settled]);
    await sleep(GAP_MS);
    if (wait.times.posted !== undefined) posted.push(wait.times.posted - started);
    if (wait.times.relayed !== undefined) {
      relayed.push(wait.times.relayed - started);
      handled.push(wait.times.seen - wait.times.relayed);
    }
    expected.done(data.seq);
  }
  const counted = readsSince(before);
  stop();
  elementChannel.posted = undefined;
  return { shown, acknowledged, posted, relayed, handled, durable: [], reads: counted };
}

/**
 * The physical limit of a write reaching another tab: each note put into a database of its own
 * with strict durability, then the record posted on the channel (one structured clone), as the
 * element tells the other tabs of an operation once it is durable.
 */
async function limitWrites({ count, phase, notes, dbName }) {
  const db = await openEntities(dbName);
  const before = reads();
  const shown = [];
  const durable = [];
  for (let i = 0; i < count; i++) {
    const { entityId, data } = note(phase, i, notes);
    const record = { entityType: 'note', entityId, data };
    const wait = expected.for(data.seq);
    const started = now();
    const tx = db.transaction('entities', 'readwrite', { durability: 'strict' });
    tx.objectStore('entities').put(record);
    await transactionDone(tx);
    durable.push(now() - started);
    channel.postMessage({ kind: 'put', record });
    shown.push((await wait.seen) - started);
    expected.done(data.seq);
    await sleep(GAP_MS);
  }
  const counted = readsSince(before);
  db.close();
  await new Promise((resolve) => { const r = indexedDB.deleteDatabase(dbName); r.onsuccess = r.onerror = r.onblocked = resolve; });
  return { shown, acknowledged: [], posted: [], relayed: [], handled: [], durable, reads: counted };
}

window.benchLive = { start, firstResult, hold, heldJsonBytes, release, serverChanges, syncClocks, follow, localWrites, limitWrites };
