import { expect } from '@open-wc/testing';
import '../src/index.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import type { Change } from '../src/protocol/change.ts';
import { createSyncElement, deleteDatabase, isLive, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { notes, useReferenceServer, type ReferenceServer, type ServerOptions } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

const FAST = { 'backoff-initial': '50', 'backoff-max': '300' };

function versions(count: number): Change[] {
  return Array.from({ length: count }, (_, n) => ({ type: 'update', entityType: 'note', entityId: 'n1', data: { text: `version ${n}` } }));
}

/** A page offline while the server deletes one note and updates another 25 times, and then compacts by itself (29 changes in all). */
function compactedWhileAway(options: ServerOptions, check: (context: { server: ReferenceServer; element: SyncConnectionElement }) => Promise<void>) {
  return () => {
    const server = useReferenceServer(options);
    let dbName: string;
    let element: SyncConnectionElement | undefined;

    beforeEach(() => {
      dbName = uniqueDbName();
    });

    afterEach(async () => {
      element?.remove();
      await deleteDatabase(dbName);
    });

    it('shows the server\'s entities after it comes back', async () => {
      await server.post(notes(3));
      element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, ...FAST });
      document.body.append(element);
      await waitFor(() => isLive(element!), 'a live connection');
      await waitFor(async () => (await element!.getEntities('note')).length === 3, 'three notes');
      await element.disconnect();
      await server.post([{ type: 'delete', entityType: 'note', entityId: 'n0' }]);
      for (const change of versions(25)) await server.post([change]);
      await waitFor(async () => (await server.stats()).changes < 29, 'the server to compact its log');
      await check({ server, element });
      const ids = (await element.getEntities('note')).map((note) => note.entityId).sort();
      expect(ids).to.deep.equal(['n1', 'n2']);
      expect((await element.getEntity('note', 'n1'))?.data).to.deep.equal({ text: 'version 24' });
    });
  };
}

describe('<sync-connection> and a server that dropped a delete it had not seen', compactedWhileAway({ compactEvery: 29, tombstoneRetentionHours: 0 }, async ({ element }) => {
  const write = element.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: 'n2', data: { text: 'written offline' } } });
  const resets = new Promise<unknown>((resolve) => element.addEventListener('sync_reset', (event) => resolve((event as CustomEvent).detail), { once: true }));
  await element.connect();
  expect(await resets).to.have.property('reason').that.matches(/compacted/);
  await write;
  await waitFor(() => isLive(element), 'live again');
  expect((await element.getEntity('note', 'n2'))?.data).to.deep.equal({ text: 'written offline' }, 'the queued write survives the reset');
}));

describe('<sync-connection> and a server that compacted but kept the delete', compactedWhileAway({ compactEvery: 29 }, async ({ element }) => {
  const events = record(element, ['sync_reset', 'changes', 'sync_completed']);
  await element.connect();
  await events.waitFor('sync_completed');
  expect(events.count('sync_reset')).to.equal(0, 'no reset: the log still holds the delete');
  const received = events.of('changes').flatMap((detail) => detail.changes);
  expect(received.length).to.equal(2, 'the delete and the latest version of n1, not 25 versions');
}));
