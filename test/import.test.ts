import { expect } from '@open-wc/testing';
import { deleteDatabase } from './helpers/e2e.ts';
import { waitFor } from './helpers/wait.ts';

interface ProbeResult {
  ok: boolean;
  error?: string;
  calls: Record<string, number>;
  exports: string[];
  defined: string[];
}

/** Imports `entry` in a fresh same-origin frame that counts workers, sockets, databases, locks, listeners. */
async function probe(entry: string): Promise<ProbeResult> {
  const frame = document.createElement('iframe');
  frame.src = `/test/fixtures/import-probe.html?entry=${encodeURIComponent(entry)}`;
  document.body.append(frame);
  try {
    const result = () => (frame.contentWindow as (Window & { probeResult?: ProbeResult }) | null)?.probeResult;
    await waitFor(() => result() !== undefined, `the import of ${entry}`, 10_000);
    return result()!;
  } finally {
    frame.remove();
  }
}

/** The older `SyncClient`'s module-level API and the migration helpers: `sync-connection/compat` only. */
const COMPAT_API = [
  'syncClient', 'syncClientLegacy', 'initializeSync', 'connectToSyncServer', 'disconnectFromSyncServer',
  'getSyncStatus', 'cleanupBackgroundSync', 'sendSyncMessage', 'SyncClientCompat',
  'migrateEventListeners', 'migrateQueuedOperations', 'migrateSyncState',
];

describe('importing the package', () => {
  it('the main entry defines the two elements and starts nothing: no worker, socket, database, lock, channel or listener', async () => {
    const result = await probe('/src/index.ts');
    expect(result.ok, result.error).to.equal(true);
    expect(result.defined).to.deep.equal(['sync-connection', 'sync-status']);
    expect(result.calls).to.deep.equal({});
    // The element API only: the client without an element and the older API have entries of their own.
    expect(result.exports).to.include.members(['SyncConnectionElement', 'SyncStatusElement', 'SyncCompletedEvent', 'SyncError']);
    expect(result.exports.filter((name) => [...COMPAT_API, 'WorkerSyncService'].includes(name))).to.deep.equal([]);
  });

  for (const entry of ['/src/element.ts', '/src/service.ts', '/src/compat.ts']) {
    it(`${entry.replace('/src/', '').replace('.ts', '')} defines no element and starts nothing`, async () => {
      const result = await probe(entry);
      expect(result.ok, result.error).to.equal(true);
      expect(result.defined).to.deep.equal([]);
      expect(result.calls).to.deep.equal({});
      // The older `SyncClient`'s module-level API is there, created but idle.
      if (entry === '/src/compat.ts') expect(result.exports).to.include.members(COMPAT_API);
    });
  }

  it('the probe notices a module that does start something', async () => {
    // The first use of the default client: proof that the counts above could be non-zero.
    const result = await probe('/test/fixtures/import-and-use.ts');
    expect(result.ok, result.error).to.equal(true);
    expect(result.calls['indexedDB.open'] ?? 0, JSON.stringify(result.calls)).to.be.greaterThan(0);
    await deleteDatabase('import-probe-use');
  });
});
