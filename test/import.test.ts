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

describe('importing the package', () => {
  it('the main entry defines the two elements and starts nothing: no worker, socket, database, lock, channel or listener', async () => {
    const result = await probe('/src/index.ts');
    expect(result.ok, result.error).to.equal(true);
    expect(result.defined).to.deep.equal(['sync-connection', 'sync-status']);
    expect(result.calls).to.deep.equal({});
    // The older SyncClient API's module-level functions and clients are there, created but idle.
    expect(result.exports).to.include.members([
      'syncClient', 'syncClientLegacy', 'initializeSync', 'connectToSyncServer', 'disconnectFromSyncServer',
      'getSyncStatus', 'cleanupBackgroundSync', 'sendSyncMessage', 'SyncClientCompat', 'WorkerSyncService',
      'migrateEventListeners', 'migrateQueuedOperations', 'migrateSyncState', 'SyncConnectionElement',
    ]);
  });

  for (const entry of ['/src/element.ts', '/src/service.ts', '/src/compat.ts']) {
    it(`${entry.replace('/src/', '').replace('.ts', '')} defines no element and starts nothing`, async () => {
      const result = await probe(entry);
      expect(result.ok, result.error).to.equal(true);
      expect(result.defined).to.deep.equal([]);
      expect(result.calls).to.deep.equal({});
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
