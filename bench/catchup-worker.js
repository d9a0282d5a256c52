// Dedicated worker for the catch-up benchmark's "physical limit" baseline. It first downloads
// the whole catch-up over a raw WebSocket and keeps the frames in memory (not timed), then times
// only the IndexedDB writes: per frame of 1,000 changes, one readwrite transaction in which every
// put is issued without awaiting, plus the frame's LSN in `meta`, and one wait for the commit.
// No network, no protocol and no JSON inside the timed part.
import { openDatabase, toEntity, transactionDone } from './catchup-idb.js';

function download(wsUrl, clientId) {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${wsUrl}?clientId=${encodeURIComponent(clientId)}&lastLSN=0%2F0`);
    const frames = [];
    socket.onopen = () => socket.send(JSON.stringify({ type: 'sync', clientId, lastLSN: '0/0' }));
    socket.onerror = () => reject(new Error('socket error'));
    socket.onclose = () => reject(new Error('socket closed before sync_complete'));
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 'changes') frames.push(frame);
      else if (frame.type === 'sync_complete') {
        socket.onclose = null;
        socket.close();
        resolve(frames);
      }
    };
  });
}

self.onmessage = async ({ data: { wsUrl, dbName, clientId } }) => {
  try {
    const frames = await download(wsUrl, clientId);
    const batches = frames.map((frame) => ({
      lsn: frame.lsn,
      entities: frame.changes.filter((c) => c.type === 'update').map((c) => toEntity(c, frame.lsn)),
    }));
    const changes = batches.reduce((sum, batch) => sum + batch.entities.length, 0);
    const db = await openDatabase(dbName);
    self.postMessage({ type: 'writing' });
    const start = performance.now();
    for (const { lsn, entities } of batches) {
      const tx = db.transaction(['entities', 'meta'], 'readwrite');
      const done = transactionDone(tx);
      const store = tx.objectStore('entities');
      for (const entity of entities) store.put(entity);
      tx.objectStore('meta').put(lsn, 'lastLSN');
      await done;
    }
    const seconds = (performance.now() - start) / 1000;
    db.close();
    self.postMessage({ type: 'done', changes, transactions: batches.length, seconds });
  } catch (error) {
    self.postMessage({ type: 'failed', error: String(error?.stack ?? error) });
  }
};
