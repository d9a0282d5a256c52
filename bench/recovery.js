// Runs in the benchmark page. Logs, with wall-clock times, when a client reconnects after the
// server went away: a <sync-connection> (its own schedule; in a page it believes hidden, the
// schedule from before #15), or as the baseline a plain WebSocket that redials 50 ms after every
// failure and sends `sync` once open. The benchmark in Node stops and starts the server and reads
// the log; this page only records.

/** Wall clock with sub-millisecond resolution, comparable with Node's `performance.timeOrigin + performance.now()`. */
const now = () => performance.timeOrigin + performance.now();
const log = [];
const record = (type, detail) => log.push({ type, at: now(), ...(detail === undefined ? {} : { detail }) });

function firstEvent(type) {
  return new Promise((resolve) => {
    const check = () => (log.some((entry) => entry.type === type) ? resolve() : setTimeout(check, 10));
    check();
  });
}

/**
 * A <sync-connection> with its default schedule. `hidden`: the page says it is hidden (as a
 * background tab does, without the browser throttling it), so the client keeps the doubling
 * schedule a hidden page has, the one every page had before.
 */
async function startElement(name, hidden) {
  if (hidden) Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
  await customElements.whenDefined('sync-connection');
  const sync = document.createElement('sync-connection');
  sync.setAttribute('url', '/api/sync');
  sync.setAttribute('db-name', `bench-recovery-${name}`);
  sync.addEventListener('connected', () => record('connected'));
  sync.addEventListener('sync_completed', () => record('synced'));
  sync.addEventListener('disconnected', (event) => record('closed', { code: event.detail.code }));
  // Every retry scheduled after a drop (a dial that fails schedules the next one).
  sync.addEventListener('reconnecting', (event) => record('dial', { delay: event.detail.delay }));
  document.body.append(sync);
  await firstEvent('synced');
  return document.visibilityState;
}

/** The naive client: redial 50 ms after every close until open; then `sync` and wait for `sync_complete`. */
async function startRaw() {
  const base = new URL('/api/sync', location.href);
  base.protocol = base.protocol.replace('http', 'ws');
  let lastLSN = '0/0';
  const dial = () => {
    const url = new URL(base);
    url.searchParams.set('clientId', 'bench-raw');
    url.searchParams.set('lastLSN', lastLSN);
    const socket = new WebSocket(url);
    let opened = false;
    socket.onopen = () => {
      opened = true;
      record('connected');
      socket.send(JSON.stringify({ type: 'sync', clientId: 'bench-raw', lastLSN }));
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (typeof frame.lsn === 'string' && (frame.type === 'changes' || frame.type === 'sync_complete')) lastLSN = frame.lsn;
      if (frame.type === 'sync_complete') record('synced');
    };
    socket.onclose = (event) => {
      if (opened) record('closed', { code: event.code });
      record('dial', { delay: 50 });
      setTimeout(dial, 50);
    };
  };
  dial();
  await firstEvent('synced');
  return document.visibilityState;
}

window.benchRecovery = { now, log, startElement, startRaw };
