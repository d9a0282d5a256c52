import { expect } from '@open-wc/testing';
import '../src/index.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import type { EventLog } from './helpers/events.ts';
import { nextTask, Observed } from './helpers/observed.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

interface TabWindow extends Window {
  tabReady?: boolean;
  events: EventLog<'connected' | 'changes' | 'sync_completed' | 'operation_complete' | 'disconnected'>;
}

interface Tab {
  frame: HTMLIFrameElement;
  window: TabWindow;
  element: SyncConnectionElement;
}

const upsert = (id: string, entityId: string, data: unknown) =>
  ({ type: 'upsert', id, payload: { entityType: 'note', entityId, data } });

/**
 * Local-first reads against the real reference server, in tabs (same-origin iframes: Web Locks
 * and BroadcastChannel span them as real tabs), with the server away, and across reloads.
 */
describe('local-first reads across tabs, offline and reloads', () => {
  const server = useReferenceServer();
  let dbName: string;
  const tabs: Tab[] = [];

  async function openTab(frame = document.createElement('iframe')): Promise<Tab> {
    if (!frame.isConnected) {
      frame.src = `/test/fixtures/tab.html?url=${encodeURIComponent(server.wsUrl)}&db=${dbName}`;
      document.body.append(frame);
    }
    await waitFor(() => (frame.contentWindow as TabWindow | null)?.tabReady === true, 'the tab to load');
    const window = frame.contentWindow as TabWindow;
    const tab = { frame, window, element: window.document.querySelector('sync-connection') as SyncConnectionElement };
    if (!tabs.includes(tab)) tabs.push(tab);
    return tab;
  }

  async function reload(tab: Tab): Promise<Tab> {
    // The frame's window object stays across a navigation; the page it shows sets tabReady anew.
    tab.window.tabReady = false;
    tab.window.location.reload();
    await waitFor(() => (tab.frame.contentWindow as TabWindow | null)?.tabReady === true, 'the reloaded tab');
    tabs.splice(tabs.indexOf(tab), 1);
    return openTab(tab.frame);
  }

  function closeTab(tab: Tab): void {
    tab.frame.remove();
    tabs.splice(tabs.indexOf(tab), 1);
  }

  const role = (tab: Tab) => tab.element.getAttribute('role');

  async function settled(list: Tab[]): Promise<Tab> {
    await waitFor(() => list.filter((tab) => role(tab) === 'leader').length === 1
      && list.every((tab) => tab.element.getAttribute('status') === 'connected'), 'one leader and every tab connected');
    return list.find((tab) => role(tab) === 'leader')!;
  }

  beforeEach(() => {
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const tab of tabs.splice(0)) tab.frame.remove();
    await deleteDatabase(dbName);
  });

  it('offline: a write shows at once in this tab and another, survives a reload and a tab opened later, and settles once the server is back', async () => {
    const first = await openTab();
    const second = await openTab();
    await settled([first, second]);
    await server.post(notes(1));
    await waitFor(async () => (await second.element.getEntity('note', 'n0')) !== undefined, 'the note synced');
    const observed = new Observed();
    second.element.observe('note', observed.listener);
    await observed.waitFor('the synced note', (rows) => rows.length === 1);
    await server.stop();
    await waitFor(() => first.element.getAttribute('status') === 'reconnecting', 'the server gone');
    const write = first.element.queueOperation(upsert('offline-1', 'mine', { text: 'written offline' }));
    expect(await first.element.getEntity('note', 'mine')).to.deep.include({ data: { text: 'written offline' }, pending: true });
    const shown = await observed.waitFor('the other tab\'s write', (rows) => rows.some((row) => row.entityId === 'mine'));
    expect(shown.rows.find((row) => row.entityId === 'mine')).to.deep.equal({ entityType: 'note', entityId: 'mine', data: { text: 'written offline' }, pending: true });
    const synced = (rows: typeof shown.rows) => rows.find((row) => row.entityId === 'n0');
    expect(synced(shown.rows), 'the row that did not change is the same object').to.equal(synced(observed.calls[0]!.rows));

    const reloaded = await reload(second);
    expect(await reloaded.element.getEntity('note', 'mine')).to.deep.include({ data: { text: 'written offline' }, pending: true });
    const later = await openTab();
    const laterRows = new Observed();
    later.element.observe('note', laterRows.listener);
    expect((await laterRows.waitFor('the first result', () => true)).rows.map((row) => [row.entityId, row.pending])).to.deep.equal([['mine', true], ['n0', undefined]]);

    await server.startAgain();
    expect((await write).id).to.equal('offline-1');
    await laterRows.waitFor('acknowledged in the later tab', (rows) => rows.find((row) => row.entityId === 'mine')?.pending === undefined);
    await waitFor(async () => (await reloaded.element.getEntity('note', 'mine'))?.pending === undefined, 'acknowledged in the reloaded tab');
    const values = laterRows.calls.map((call) => call.rows.find((row) => row.entityId === 'mine'));
    expect(values.every((row) => row !== undefined && (row.data as { text: string }).text === 'written offline'), 'never gone, never another value').to.equal(true);
    const onServer = (await server.entities()).entities.find((entity) => entity.entityId === 'mine');
    expect(onServer?.data).to.deep.equal({ text: 'written offline' });
  });

  it('a patch is merged by the server, and the whole value comes back under it', async () => {
    const tab = await openTab();
    await settled([tab]);
    await server.post([{ type: 'update', entityType: 'note', entityId: 'p', data: { title: 'a', done: false, tags: ['x'] } }]);
    await waitFor(async () => (await tab.element.getEntity('note', 'p')) !== undefined, 'the note synced');
    const result = await tab.element.queueOperation({ type: 'patch', payload: { entityType: 'note', entityId: 'p', data: { done: true, tags: null } } });
    await waitFor(async () => (await tab.element.getEntity('note', 'p'))?.lsn === result.lsn, 'the merged value stored');
    expect(await tab.element.getEntity('note', 'p')).to.deep.include({ data: { title: 'a', done: true } });
    expect((await server.entities()).entities.find((entity) => entity.entityId === 'p')?.data).to.deep.equal({ title: 'a', done: true });
  });

  it('keeps a follower\'s observer consistent when the leader\'s tab closes with writes pending: no duplicate call, no write lost or shown twice', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    const observed = new Observed();
    follower.element.observe('note', observed.listener);
    await observed.waitFor('the first result', () => true);
    await server.stop();
    await waitFor(() => follower.element.getAttribute('status') === 'reconnecting', 'the server gone');
    const writes = [
      leader.element.queueOperation(upsert('from-leader', 'l', { by: 'leader' })),
      follower.element.queueOperation(upsert('from-follower', 'f', { by: 'follower' })),
    ];
    for (const write of writes) void write.catch(() => undefined); // the leader's tab closes before its answer
    await observed.waitFor('both writes, pending', (rows) => rows.length === 2 && rows.every((row) => row.pending));
    // Other tabs show a write before it is stored: close the leader's tab only once both are.
    await waitFor(() => leader.element.getAttribute('pending') === '2', 'both writes stored');
    closeTab(leader);
    await waitFor(() => role(follower) === 'leader', 'the follower takes over');
    await server.startAgain();
    await observed.waitFor('both acknowledged', (rows) => rows.length === 2 && rows.every((row) => !row.pending));
    await waitFor(async () => (await server.stats()).operationsApplied === 2, 'both applied at the server');
    const lsn = await server.post(notes(1, 100));
    await waitFor(() => follower.element.getAttribute('last-lsn') === lsn, 'a later change heard');
    await nextTask();
    for (let i = 1; i < observed.calls.length; i++) {
      const delta = observed.calls[i]!.delta;
      expect(delta.added.length + delta.updated.length + delta.removed.length, `call ${i} changed something`).to.be.above(0);
    }
    const both = observed.calls.findIndex((call) => call.rows.length === 2);
    expect(observed.calls.slice(both).every((call) => ['f', 'l'].every((id) => call.rows.some((row) => row.entityId === id))), 'never lost once shown').to.equal(true);
    expect(observed.ids()).to.deep.equal(['f', 'l', 'n100']);
    expect((await server.stats()).operationsApplied).to.equal(2);
  });

  it('a query started while a large batch is being written ends on the committed data', async function () {
    this.timeout(30_000);
    await server.post(notes(20_000));
    const tab = await openTab();
    await waitFor(() => tab.element.hasAttribute('syncing'), 'the catch-up under way', 10_000);
    const observed = new Observed();
    tab.element.observe('note', observed.listener);
    await tab.window.events.waitFor('sync_completed', () => true, { timeout: 20_000 });
    const last = await observed.waitFor('every note', (rows) => rows.length === 20_000, 0, 10_000);
    const stored = await tab.element.getEntities('note');
    expect(last.rows.length).to.equal(stored.length);
    expect(last.rows.every((row, i) => row.entityId === stored[i]!.entityId && row.lsn === stored[i]!.lsn)).to.equal(true);
  });

  it('after a reset from a server whose log does not continue ours, shows the new server\'s entities and keeps the pending writes', async () => {
    const tab = await openTab();
    await settled([tab]);
    await server.post(notes(3));
    await waitFor(async () => (await tab.element.getEntities('note')).length === 3, 'three notes');
    const observed = new Observed();
    tab.element.observe('note', observed.listener);
    await observed.waitFor('three notes', (rows) => rows.length === 3);
    // Another server, with a shorter log: our resume point is ahead of it.
    const oldUrl = server.wsUrl;
    await server.stop();
    const write = tab.element.queueOperation(upsert('kept', 'mine', { text: 'kept across the reset' }));
    await observed.waitFor('the write', (rows) => rows.length === 4);
    await server.start();
    expect(server.wsUrl).to.not.equal(oldUrl);
    await server.post([{ type: 'update', entityType: 'note', entityId: 'fresh', data: {} }]);
    const resets = new Promise((resolve) => tab.element.addEventListener('sync_reset', (event) => resolve(event.detail), { once: true }));
    tab.element.url = server.wsUrl;
    expect(await resets).to.have.property('reason').that.is.a('string');
    expect((await write).id).to.equal('kept');
    const after = await observed.waitFor('the new server\'s notes and the write', (rows) => rows.length === 2 && rows.every((row) => !row.pending));
    expect(after.rows.map((row) => row.entityId)).to.deep.equal(['fresh', 'mine']);
  });
});
