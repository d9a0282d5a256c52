/** Databases and `<sync-connection>` elements for browser tests. */
import type { SyncConnectionElement } from '../../src/elements/sync-connection.ts';

let dbCounter = 0;
/** A database name no other test uses. */
export function uniqueDbName(): string {
  return `test-${Date.now().toString(36)}-${(dbCounter++).toString(36)}`;
}

export function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}

const caughtUp = new WeakSet<Element>();

/**
 * Creates a `<sync-connection>` for a test (the test appends it, and removes it when done). It
 * tracks whether a catch-up finished since the last `connected`, for {@link isLive}.
 */
export function createSyncElement(attributes: Record<string, string | boolean>): SyncConnectionElement {
  const element = document.createElement('sync-connection');
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) element.setAttribute(name, '');
    else if (value !== false) element.setAttribute(name, value);
  }
  element.addEventListener('connected', () => caughtUp.delete(element));
  element.addEventListener('sync_completed', () => caughtUp.add(element));
  return element;
}

/** Connected, and the catch-up that followed the connection is complete. */
export function isLive(element: SyncConnectionElement): boolean {
  return caughtUp.has(element) && element.getAttribute('status') === 'connected'
    && element.hasAttribute('connected') && !element.hasAttribute('syncing');
}
