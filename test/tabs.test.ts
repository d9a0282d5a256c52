import { expect } from '@open-wc/testing';
import { LocalStore } from '../src/db/local-store.ts';
import { openSyncDB } from '../src/db/schema.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import type { EventLog } from './helpers/events.ts';
import type { QueuedOperation, SyncState } from '../src/protocol/state.ts';
import { TAB_PROTOCOL_VERSION, tabsName } from '../src/protocol/tab-messages.ts';
import type { MemoryDatabase } from './helpers/memory-database.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

interface TabWindow extends Window {
  tabReady?: boolean;
  database?: MemoryDatabase;
  warnings: string[];
  /** Recorded in the tab from the start (tab.html). */
  events: EventLog<'connected' | 'changes' | 'sync_completed' | 'operation_complete' | 'disconnected'>;
}

interface Tab {
  frame: HTMLIFrameElement;
  window: TabWindow;
  element: SyncConnectionElement;
}

/** Each "tab" is a same-origin iframe: Web Locks and BroadcastChannel span them as real tabs. */
describe('one connection per client across tabs', () => {
  const server = useReferenceServer();
  let dbName: string;
  const tabs: Tab[] = [];

  async function openTab(extra = ''): Promise<Tab> {
    const frame = document.createElement('iframe');
    frame.src = `/test/fixtures/tab.html?url=${encodeURIComponent(server.wsUrl)}&db=${dbName}${extra}`;
    document.body.append(frame);
    await waitFor(() => (frame.contentWindow as TabWindow | null)?.tabReady === true, 'the tab to load');
    const window = frame.contentWindow as TabWindow;
    const element = window.document.querySelector('sync-connection') as SyncConnectionElement;
    const tab = { frame, window, element };
    tabs.push(tab);
    return tab;
  }

  const role = (tab: Tab) => tab.element.getAttribute('role');
  const leaderOf = (list: Tab[]) => list.find((tab) => role(tab) === 'leader');

  async function settled(list: Tab[]): Promise<Tab> {
    await waitFor(() => list.filter((tab) => role(tab) === 'leader').length === 1
      && list.every((tab) => tab.element.getAttribute('status') === 'connected'), 'one leader and every tab connected');
    return leaderOf(list)!;
  }

  function closeTab(tab: Tab): void {
    tab.frame.remove();
    tabs.splice(tabs.indexOf(tab), 1);
  }

  beforeEach(() => {
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const tab of tabs.splice(0)) tab.frame.remove();
    await deleteDatabase(dbName);
  });

  for (const count of [2, 3]) {
    it(`holds exactly one socket at the server for ${count} tabs, with one leader`, async () => {
      const opened: Tab[] = [];
      for (let i = 0; i < count; i++) opened.push(await openTab());
      await settled(opened);
      await waitFor(async () => (await server.stats()).clients === 1, 'one socket at the server');
      // A change posted now reaches every tab: by then the tabs are past the election and mirror the leader.
      const lsn = await server.post(notes(1, 80));
      await waitFor(() => opened.every((tab) => tab.element.getAttribute('last-lsn') === lsn), 'every tab at the new LSN');
      expect((await server.stats()).clients).to.equal(1);
      expect(opened.map(role).sort()).to.deep.equal(['leader', ...Array(count - 1).fill('follower')].sort());
    });
  }

  it('mirrors the leader\'s events and state in a follower, which reads the shared entities', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    const lsn = await server.post(notes(2, 50));
    await waitFor(() => follower.element.getAttribute('last-lsn') === lsn, 'the follower at the new LSN');
    // The leader's state comes just before its events on the channel: wait for the batch's event too.
    await follower.window.events.waitFor('changes', (detail) => detail.lsn === lsn);
    const changes = follower.window.events.of('changes');
    expect(changes.flatMap((detail) => detail.changes.map((c) => c.entityId))).to.deep.equal(['n50', 'n51']);
    expect((await follower.element.getEntity('note', 'n51'))?.data).to.deep.equal({ text: 'note 51' });
    expect(follower.element.getState().role).to.equal('follower');
    expect(follower.element.getState().isConnected).to.equal(true);
  });

  it('resolves a follower\'s operation in the follower when the server acknowledges it, applied once', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    const result = await follower.element.queueOperation({
      type: 'upsert', id: 'from-follower', payload: { entityType: 'note', entityId: 'f', data: { text: 'follower' } },
    });
    expect(result.id).to.equal('from-follower');
    expect(result.lsn).to.be.a('string');
    expect((await server.stats()).operationsApplied).to.equal(1);
    await leader.window.events.waitFor('operation_complete', ({ id }) => id === 'from-follower');
    expect(follower.element.getAttribute('pending')).to.equal('0');
  });

  it('takes over when the leader\'s tab closes, resuming from the stored LSN with nothing lost or applied twice', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    const before = await server.post(notes(3));
    await waitFor(() => follower.element.getAttribute('last-lsn') === before, 'both at the LSN');
    await server.stop();
    await waitFor(() => follower.element.getAttribute('status') === 'reconnecting', 'the follower mirrors reconnecting');
    const fromLeader = leader.element.queueOperation({ type: 'upsert', id: 'op-leader', payload: { entityType: 'note', entityId: 'l', data: {} } });
    fromLeader.catch(() => undefined); // its tab closes before the answer
    const fromFollower = follower.element.queueOperation({ type: 'upsert', id: 'op-follower', payload: { entityType: 'note', entityId: 'f', data: {} } });
    await waitFor(() => leader.element.getAttribute('pending') === '2', 'both operations stored');
    closeTab(leader);
    await waitFor(() => role(follower) === 'leader', 'the follower to take over');
    await server.startAgain();
    expect((await fromFollower).id).to.equal('op-follower');
    await waitFor(() => follower.element.getAttribute('pending') === '0', 'the outbox drained');
    expect(follower.window.events.of('connected').at(-1)?.lastLSN).to.equal(before);
    const stats = await server.stats();
    expect(stats.operationsApplied).to.equal(2);
    expect(stats.clients).to.equal(1);
    const ids = (await server.entities()).entities.filter((e) => e.entityType === 'note').map((e) => e.entityId).sort();
    expect(ids).to.deep.equal(['f', 'l', 'n0', 'n1', 'n2']);
  });

  it('with a custom Database, only the leading tab\'s database gets the changes; a follower that takes over resumes into its own', async () => {
    const first = await openTab('&database');
    const second = await openTab('&database');
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    const lsn = await server.post(notes(2));
    await waitFor(() => follower.element.getAttribute('last-lsn') === lsn, 'the follower mirrors the LSN');
    const ids = (tab: Tab) => tab.window.database!.committed.flat().map((write) => write.entityId);
    expect(ids(leader)).to.deep.equal(['n0', 'n1']);
    expect(ids(follower), 'a follower\'s page applies nothing').to.deep.equal([]);
    closeTab(leader);
    await waitFor(() => role(follower) === 'leader', 'the follower to take over');
    await server.post(notes(1, 2));
    await waitFor(() => ids(follower).includes('n2'), 'the new leader\'s database gets what follows');
    expect(ids(follower), 'resumed from the shared LSN, nothing before it again').to.deep.equal(['n2']);
  });

  it('takes over when the leader removes its element', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    leader.element.remove();
    await waitFor(() => role(follower) === 'leader' && follower.element.getAttribute('status') === 'connected', 'the follower leads');
    await waitFor(async () => (await server.stats()).clients === 1, 'one socket');
    const lsn = await server.post(notes(1, 9));
    await waitFor(() => follower.element.getAttribute('last-lsn') === lsn, 'the new leader applies live changes');
  });

  it('hands the connection over when the leader\'s page is frozen, and follows on resume', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    // What Chrome dispatches before it freezes a hidden or cached page.
    leader.window.document.dispatchEvent(new Event('freeze'));
    await waitFor(() => role(follower) === 'leader' && follower.element.getAttribute('status') === 'connected', 'the follower leads');
    expect(role(leader)).to.equal('follower');
    leader.window.document.dispatchEvent(new Event('resume'));
    await waitFor(() => leader.element.getAttribute('status') === 'connected', 'the old leader mirrors the connection');
    expect(role(leader)).to.equal('follower');
    await waitFor(async () => (await server.stats()).clients === 1, 'one socket');
  });

  it('mirrors a leader that started after it, and shows disconnected when that leader stops', async () => {
    const watcher = await openTab('&manual'); // never connects itself: follows whoever leads
    await waitFor(() => watcher.element.getState().clientId !== '', 'the watcher ready');
    const leader = await openTab();
    await waitFor(() => role(leader) === 'leader' && watcher.element.getAttribute('status') === 'connected', 'the watcher mirrors the leader');
    const lsn = await server.post(notes(1, 70));
    await waitFor(() => watcher.element.getAttribute('last-lsn') === lsn, 'the watcher hears live changes');
    leader.element.remove();
    await waitFor(() => watcher.element.getAttribute('status') === 'disconnected', 'the watcher sees the connection go');
  });

  it('settles connect() called and withdrawn at once, and reconnects after disconnect() then connect()', async () => {
    const tab = await openTab('&manual');
    await waitFor(() => tab.element.getState().clientId !== '', 'the tab ready');
    const withdrawn = tab.element.connect().then(() => 'settled', () => 'settled');
    void tab.element.disconnect();
    expect(await withdrawn).to.equal('settled');
    await tab.element.connect();
    await waitFor(() => tab.element.getAttribute('status') === 'connected', 'connected');
    void tab.element.disconnect();
    await tab.element.connect(); // a "reconnect" button
    // A change posted after connect() reaches the tab only over a connection the disconnect did not end.
    const lsn = await server.post(notes(1, 20));
    await waitFor(() => tab.element.getAttribute('last-lsn') === lsn, 'the change posted after connect()');
    expect(tab.element.getAttribute('status')).to.equal('connected');
    expect(role(tab)).to.equal('leader');
  });

  it('connects from every tab where Web Locks are missing, and says so once per tab', async () => {
    const first = await openTab('&nolocks');
    const second = await openTab('&nolocks');
    await waitFor(() => [first, second].every((tab) => tab.element.getAttribute('status') === 'connected'), 'both connected');
    expect([first, second].map(role)).to.deep.equal(['leader', 'leader']);
    await waitFor(async () => (await server.stats()).clients === 2, 'two sockets');
    for (const tab of [first, second]) {
      expect(tab.window.warnings.filter((w) => w.includes('Web Locks'))).to.have.length(1);
    }
  });

  it('ignores a malformed message on the tabs\' channel, and hears a well-formed one after it', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const follower = leader === first ? second : first;
    const seen: SyncState[] = [];
    follower.element.onStateChange((state) => seen.push(state));
    const good = follower.element.getState();
    const channel = new BroadcastChannel(tabsName(dbName, good.clientId));
    try {
      channel.postMessage({ kind: 'event', event: { type: 'status', state: { ...good, status: 'hacked' } } });
      channel.postMessage({ kind: 'event', event: { type: 'status', state: { ...good, lastLSN: 'not an LSN' } } });
      channel.postMessage({ kind: 'event', event: { type: 'status' } });
      channel.postMessage({ kind: 'cleared', ids: [42] });
      // The same channel delivers in order: once this is heard, the ones before were handled.
      channel.postMessage({ kind: 'event', event: { type: 'status', state: { ...good, pendingOperations: 42 } } });
      // The leader's own status may follow at once and put the count back: look for the state itself.
      await waitFor(() => seen.some((state) => state.pendingOperations === 42), 'the well-formed message heard');
    } finally {
      channel.close();
    }
    expect(seen.map((state) => state.status)).to.not.include('hacked');
    expect(seen.map((state) => state.lastLSN)).to.not.include('not an LSN');
    expect(follower.element.getAttribute('status')).to.equal('connected');
  });

  it('neither waits for nor talks to tabs of another protocol version (an old tab after a deploy)', async () => {
    const first = await openTab('&manual');
    await waitFor(() => first.element.getState().clientId !== '', 'the tab ready');
    const { clientId } = first.element.getState();
    const current = tabsName(dbName, clientId);
    // The previous release's name, and the next version's.
    const others = [`sync-connection:${dbName}:${clientId}`, current.replace(`-v${TAB_PROTOCOL_VERSION}:`, `-v${TAB_PROTOCOL_VERSION + 1}:`)];
    const heardByOthers: unknown[] = [];
    const channels = others.map((name) => {
      const channel = new BroadcastChannel(name);
      channel.onmessage = (event) => heardByOthers.push(event.data);
      return channel;
    });
    const heardHere: { kind?: string }[] = [];
    const mine = new BroadcastChannel(current);
    mine.onmessage = (event) => heardHere.push(event.data as { kind?: string });
    // A leader of each other version holds its lock all along.
    const releases: (() => void)[] = [];
    await Promise.all(others.map((name) => new Promise<void>((held) => {
      void navigator.locks.request(name, () => {
        held();
        return new Promise<void>((release) => releases.push(release));
      });
    })));
    try {
      await first.element.connect();
      const second = await openTab();
      const states: SyncState[] = [];
      second.element.onStateChange((state) => states.push(state));
      expect(await settled([first, second]), 'the other versions\' leaders do not hold this one back').to.equal(first);
      for (const channel of channels) {
        channel.postMessage({ kind: 'event', event: { type: 'status', state: { ...second.element.getState(), pendingOperations: 42 } } });
      }
      await waitFor(() => heardHere.some((message) => message.kind === 'hello') && heardHere.some((message) => message.kind === 'event'), 'this version\'s tabs talking');
      expect(heardByOthers, 'nothing on the other versions\' channels').to.deep.equal([]);
      expect(states.map((state) => state.pendingOperations)).to.not.include(42);
    } finally {
      for (const release of releases) release();
      for (const channel of [...channels, mine]) channel.close();
    }
  });

  it('does not send a follower\'s operation announced after a clear removed its record; stored again, it is sent', async () => {
    const first = await openTab();
    const second = await openTab();
    const leader = await settled([first, second]);
    const record = (id: string, seq: number): QueuedOperation => ({
      id, type: 'upsert', payload: { entityType: 'note', entityId: id, data: { id } }, priority: 0, seq, queuedAt: Date.now(),
    });
    const store = async (operation: QueuedOperation): Promise<void> => {
      const db = await openSyncDB(dbName);
      try {
        await new LocalStore(db).addOperations([operation]);
      } finally {
        db.close();
      }
    };
    const acknowledged = (id: string) => leader.window.events.waitFor('operation_complete', (detail) => detail.id === id);
    // What a follower does: store the operation, then announce it; this announcement comes late.
    const late = record('late', 1);
    await store(late);
    expect(await leader.element.clearOperationQueue(), 'the clear removed the record').to.equal(1);
    const channel = new BroadcastChannel(tabsName(dbName, leader.element.getState().clientId));
    try {
      channel.postMessage({ kind: 'stored', operations: [late] });
      // Announced after it on the same channel, and sent after it had it been taken.
      const next = record('next', 2);
      await store(next);
      channel.postMessage({ kind: 'stored', operations: [next] });
      await acknowledged('next');
      expect((await server.stats()).operationsApplied, 'only the operation whose record exists').to.equal(1);
      const again = record('late', 3); // the app queues the same id anew
      await store(again);
      channel.postMessage({ kind: 'stored', operations: [again] });
      await acknowledged('late');
    } finally {
      channel.close();
    }
    expect((await server.stats()).operationsApplied).to.equal(2);
    expect(leader.element.getAttribute('pending')).to.equal('0');
  });
});
