// Raw IndexedDB helpers shared by the catch-up benchmark's page script and its worker. The schema
// is the element's own (src/db/schema.ts): `entities` keyed by [entityType, entityId] with a
// `byType` index, `meta` for the LSN, `outbox`; so every variant pays for the same index.

export function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

export function transactionDone(tx) {
  const done = new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });
  done.catch(() => {});
  return done;
}

export function openDatabase(name) {
  const req = indexedDB.open(name, 1);
  req.onupgradeneeded = () => {
    const db = req.result;
    const entities = db.createObjectStore('entities', { keyPath: ['entityType', 'entityId'] });
    entities.createIndex('byType', 'entityType');
    db.createObjectStore('meta');
    db.createObjectStore('outbox', { keyPath: 'id' });
  };
  return request(req);
}

/** Deletes a database; true once deleted, false if it stayed blocked for `timeoutMs`. */
export function deleteDatabase(name, timeoutMs = 15_000) {
  return new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(name);
    const timer = setTimeout(() => resolve(false), timeoutMs);
    req.onsuccess = () => { clearTimeout(timer); resolve(true); };
    req.onerror = () => { clearTimeout(timer); resolve(false); };
  });
}

/**
 * What a variant left in its database: how many entities and the stored LSN. The element's store
 * keeps commits as segments until it folds them into `entities` (src/worker/folding.ts): an entity
 * counts whether it is folded or still in a segment.
 */
export async function inspect(name) {
  const db = await request(indexedDB.open(name));
  try {
    const stores = ['entities', 'meta', ...(db.objectStoreNames.contains('segments') ? ['segments'] : [])];
    const tx = db.transaction(stores, 'readonly');
    const [keys, lastLSN, segments] = await Promise.all([
      request(tx.objectStore('entities').getAllKeys()),
      request(tx.objectStore('meta').get('lastLSN')),
      stores.includes('segments') ? request(tx.objectStore('segments').getAll()) : [],
    ]);
    const present = new Set(keys.map((key) => JSON.stringify(key)));
    for (const { batches } of segments) {
      for (const { changes } of batches) {
        for (const change of changes) {
          const key = JSON.stringify([change.entityType, change.entityId]);
          if (change.type === 'update') present.add(key);
          else present.delete(key);
        }
      }
    }
    return { entities: present.size, lastLSN };
  } finally {
    db.close();
  }
}

/** The entity the element's change store writes for an `update` (src/worker/change-store.ts). */
export function toEntity(change, lsn) {
  const entity = { entityType: change.entityType, entityId: change.entityId, data: change.data };
  if (change.timestamp !== undefined) entity.timestamp = change.timestamp;
  if (lsn !== undefined) entity.lsn = lsn;
  return entity;
}
