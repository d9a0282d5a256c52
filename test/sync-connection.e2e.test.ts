import { expect } from '@open-wc/testing';
import '../src/index.ts';
import { OperationRejectedError, SyncError } from '../src/protocol/errors.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { compareLSN } from '../src/protocol/lsn.ts';
import type { OperationResult } from '../src/protocol/state.ts';
import {
  createSyncElement,
  deleteDatabase,
  isLive,
  notes,
  postChanges,
  recordEvents,
  serverEntities,
  serverStats,
  startAgain,
  startServer,
  stopServer,
  uniqueDbName,
  waitFor,
  type TestServer,
} from './helpers/e2e.ts';

const FAST = { 'backoff-initial': '50', 'backoff-max': '300' };

describe('<sync-connection> against the reference server', () => {
  let server: TestServer;
  let dbName: string;
  const elements: SyncConnectionElement[] = [];

  function mount(attributes: Record<string, string | boolean> = {}): SyncConnectionElement {
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, ...FAST, ...attributes });
    elements.push(element);
    document.body.append(element);
    return element;
  }

  function liveAt(element: SyncConnectionElement): Promise<void> {
    return waitFor(() => isLive(element), 'a live connection (caught up)');
  }

  beforeEach(async () => {
    server = await startServer({ batchSize: 100 });
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const element of elements.splice(0)) element.remove();
    await stopServer(server, 'SIGKILL').catch(() => undefined);
    await deleteDatabase(dbName);
  });

  it('catches up with what the server has and reflects it in its attributes', async () => {
    const lsn = await postChanges(server, notes(3));
    const element = mount();
    const events = recordEvents(element, ['connected', 'sync_started', 'sync_completed']);
    await waitFor(() => events.some((e) => e.type === 'sync_completed'), 'sync_completed');
    expect(events.map((e) => e.type)).to.deep.equal(['connected', 'sync_started', 'sync_completed']);
    expect(events[2]!.detail).to.deep.equal({ lsn });
    expect(element.getAttribute('status')).to.equal('connected');
    expect(element.hasAttribute('connected')).to.equal(true);
    expect(element.hasAttribute('syncing')).to.equal(false);
    expect(element.getAttribute('last-lsn')).to.equal(lsn);
    expect(element.getAttribute('pending')).to.equal('0');
    expect(element.getAttribute('role')).to.equal('leader');
    const stored = await element.getEntities('note');
    expect(stored.map((n) => n.entityId).sort()).to.deep.equal(['n0', 'n1', 'n2']);
    expect((await element.getEntity('note', 'n1'))?.data).to.deep.equal({ text: 'note 1' });
  });

  it('streams a live change with a changes event, then resumes after it on a new element', async () => {
    const element = mount();
    await liveAt(element);
    const events = recordEvents(element, ['changes']);
    const lsn = await postChanges(server, [{ type: 'update', entityType: 'note', entityId: 'live', data: { text: 'hi' } }]);
    await waitFor(() => events.length === 1, 'a changes event');
    expect(events[0]!.detail).to.deep.include({ lsn });
    expect((await element.getEntity('note', 'live'))?.data).to.deep.equal({ text: 'hi' });
    element.remove();
    // A second element on the same database starts from the stored LSN: nothing is replayed.
    await postChanges(server, notes(1, 100));
    const again = mount();
    const replayed = recordEvents(again, ['changes', 'sync_completed']);
    await waitFor(() => replayed.some((e) => e.type === 'sync_completed'), 'the second catch-up');
    const applied = replayed.filter((e) => e.type === 'changes')
      .flatMap((e) => (e.detail as { changes: { entityId: string }[] }).changes.map((c) => c.entityId));
    expect(applied).to.deep.equal(['n100']);
  });

  it('reflects each status in its attributes as the connection goes through them', async () => {
    const element = mount();
    const seen: string[] = [];
    element.addEventListener('state_change', () => {
      const status = element.getAttribute('status')!;
      if (seen.at(-1) !== status) seen.push(status);
    });
    await liveAt(element);
    await stopServer(server);
    await waitFor(() => element.getAttribute('status') === 'reconnecting', 'reconnecting');
    window.dispatchEvent(new Event('offline'));
    await waitFor(() => element.getAttribute('status') === 'offline', 'offline');
    await startAgain(server);
    window.dispatchEvent(new Event('online'));
    await liveAt(element);
    await element.disconnect();
    await waitFor(() => element.getAttribute('status') === 'disconnected', 'disconnected');
    expect(seen).to.include.members(['connecting', 'connected', 'reconnecting', 'offline', 'disconnected']);
    expect(seen.indexOf('reconnecting')).to.be.lessThan(seen.indexOf('offline'));
    expect(seen.at(-1)).to.equal('disconnected');
  });

  it('goes reconnecting when the server stops and comes back on its own, losing nothing', async () => {
    const element = mount();
    await liveAt(element);
    const events = recordEvents(element, ['disconnected', 'reconnecting', 'connected', 'sync_completed']);
    await stopServer(server);
    await waitFor(() => events.some((e) => e.type === 'reconnecting'), 'reconnecting');
    const disconnected = events.find((e) => e.type === 'disconnected')!.detail as { willReconnect: boolean };
    expect(disconnected.willReconnect).to.equal(true);
    const queued = element.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: 'offline', data: { text: 'x' } } });
    await startAgain(server);
    const result = await queued;
    await liveAt(element);
    expect(events.some((e) => e.type === 'connected')).to.equal(true);
    expect((await serverEntities(server)).entities.map((e) => e.entityId)).to.include('offline');
    expect(result.lsn).to.be.a('string');
  });

  it('uses a token set right after the element was inserted, as frameworks do', async () => {
    await stopServer(server, 'SIGKILL');
    server = await startServer({ token: 'let-me-in' });
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, ...FAST });
    elements.push(element);
    document.body.append(element);
    element.token = 'let-me-in';
    await liveAt(element);
    expect((await serverStats(server)).clients).to.equal(1);
  });

  it('keeps its connection when moved elsewhere in the page', async () => {
    const element = mount();
    await liveAt(element);
    const seen = recordEvents(element, ['disconnected', 'connected']);
    const box = document.createElement('div');
    document.body.append(box);
    box.append(element);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(seen).to.have.length(0);
    expect(element.getAttribute('status')).to.equal('connected');
    expect((await serverStats(server)).clients).to.equal(1);
    box.remove();
  });

  it('dispatches invalid_url after insertion, so a listener added just after append hears it', async () => {
    const element = createSyncElement({ url: 'file:///etc/passwd', 'db-name': dbName });
    elements.push(element);
    document.body.append(element);
    const errors = recordEvents(element, ['error']);
    await waitFor(() => errors.length > 0, 'an error event');
    expect((errors[0]!.detail as { code: string }).code).to.equal('invalid_url');
  });

  it('error with code invalid_url for a javascript: url, which does not bubble', async () => {
    let bubbled = false;
    const onDocument = () => { bubbled = true; };
    document.addEventListener('error', onDocument);
    const element = createSyncElement({ url: 'javascript:alert(1)', 'db-name': dbName });
    elements.push(element);
    const errors = recordEvents(element, ['error']);
    document.body.append(element);
    await waitFor(() => errors.length > 0, 'an error event');
    document.removeEventListener('error', onDocument);
    expect((errors[0]!.detail as { code: string }).code).to.equal('invalid_url');
    expect(errors[0]!.event.bubbles).to.equal(false);
    expect(errors[0]!.event.composed).to.equal(false);
    expect(bubbled).to.equal(false);
    expect(element.getAttribute('status')).to.equal('error');
  });

  it('stops its worker and closes its socket when removed from the page', async () => {
    let terminated = 0;
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, ...FAST });
    element.createWorker = () => {
      const worker = new Worker(new URL('../src/worker/sync-worker.ts', import.meta.url), { type: 'module' });
      const terminate = worker.terminate.bind(worker);
      worker.terminate = () => { terminated += 1; terminate(); };
      return worker as never;
    };
    elements.push(element);
    document.body.append(element);
    await liveAt(element);
    expect((await serverStats(server)).clients).to.equal(1);
    element.remove();
    await waitFor(() => terminated === 1, 'the worker terminated');
    await waitFor(async () => (await serverStats(server)).clients === 0, 'the server to see the socket closed');
    const failure = await element.queueOperation({ type: 'upsert', payload: {} }).catch((e: SyncError) => e);
    expect(failure).to.be.instanceOf(SyncError);
  });

  it('<sync-status> shows the status and a progress bar during catch-up', async () => {
    // Six records, so the catch-up comes as six frames and six progress steps.
    for (let i = 0; i < 6; i++) await postChanges(server, notes(100, i * 100));
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, ...FAST });
    elements.push(element);
    const status = document.createElement('sync-status');
    element.append(status);
    const bars: { value: number; max: number }[] = [];
    const steps: number[] = [];
    element.addEventListener('sync_progress', async (event) => {
      steps.push(event.detail.applied);
      await status.updateComplete;
      const bar = status.shadowRoot?.querySelector('progress');
      bars.push(bar ? { value: bar.value, max: bar.max } : { value: -1, max: -1 });
    });
    document.body.append(element);
    await liveAt(element);
    await status.updateComplete;
    expect(steps.at(-1)).to.equal(600);
    expect(steps.length).to.be.greaterThan(1);
    // Batches written in one transaction settle the state before their events: the bar shows at
    // least the step being reported, never less.
    const why = JSON.stringify({ bars, steps });
    expect(bars.every(({ max }) => max === 600), why).to.equal(true);
    expect(bars.every(({ value }, i) => value >= steps[i]!), why).to.equal(true);
    expect(bars.at(-1), why).to.deep.equal({ value: 600, max: 600 });
    expect(status.shadowRoot?.querySelector('[part=status]')?.textContent).to.equal('connected');
    expect(status.shadowRoot?.querySelector('progress')).to.equal(null);
  });

  describe('queueOperation', () => {
    it('resolves only after the server has applied and acknowledged the operation', async () => {
      const element = mount();
      await liveAt(element);
      const completed = recordEvents(element, ['operation_complete']);
      const result = await element.queueOperation({
        type: 'upsert', id: 'op-1', payload: { entityType: 'note', entityId: 'a', data: { text: 'A' } },
      });
      // When the promise resolves the server already holds the write.
      const atServer = await serverEntities(server);
      expect(atServer.entities).to.deep.include({ entityType: 'note', entityId: 'a', data: { text: 'A' } });
      expect(result.id).to.equal('op-1');
      expect(compareLSN(result.lsn!, atServer.lsn)).to.be.at.most(0);
      expect(completed.map((e) => e.detail)).to.deep.equal([{ id: 'op-1', lsn: result.lsn }]);
      await waitFor(async () => (await element.getEntity('note', 'a')) !== undefined, 'the change echoed back');
      expect(element.getAttribute('pending')).to.equal('0');
    });

    it('rejects with the server message when the server answers operation_error', async () => {
      const element = mount();
      await liveAt(element);
      const errors = recordEvents(element, ['operation_error']);
      const failure = await element.queueOperation({ type: 'no_such_type', id: 'bad-1', payload: {} })
        .then(() => undefined, (error: unknown) => error);
      expect(failure).to.be.instanceOf(OperationRejectedError);
      expect((failure as OperationRejectedError).operationId).to.equal('bad-1');
      expect((errors[0]!.detail as { id: string; message: string }).message)
        .to.equal((failure as Error).message);
      await waitFor(() => element.getAttribute('pending') === '0', 'pending back to 0');
    });

    it('counts pending operations while the server is away and sends them by priority, FIFO within one', async () => {
      const element = mount();
      await liveAt(element);
      await stopServer(server);
      await waitFor(() => element.getAttribute('status') === 'reconnecting', 'reconnecting');
      const queue = (id: string, priority: number) => element.queueOperation({
        type: 'upsert', id, priority, payload: { entityType: 'p', entityId: id, data: { priority } },
      });
      const results = new Map<string, Promise<OperationResult>>();
      for (const [id, priority] of [['low-1', 0], ['high-1', 5], ['mid', 1], ['high-2', 5], ['low-2', 0]] as const) {
        results.set(id, queue(id, priority));
        await waitFor(() => element.getAttribute('pending') === String(results.size), `pending = ${results.size}`);
      }
      expect(element.getState().pendingOperations).to.equal(5);
      await startAgain(server);
      const settled = await Promise.all([...results].map(async ([id, p]) => ({ id, lsn: (await p).lsn! })));
      settled.sort((a, b) => compareLSN(a.lsn, b.lsn));
      expect(settled.map((s) => s.id)).to.deep.equal(['high-1', 'high-2', 'mid', 'low-1', 'low-2']);
      await waitFor(() => element.getAttribute('pending') === '0', 'pending = 0');
    });

    it('applies every operation exactly once when the server is killed in the middle of a stream', async () => {
      const element = mount();
      await liveAt(element);
      const count = 40;
      const all = Array.from({ length: count }, (_, i) => element.queueOperation({
        type: 'upsert', id: `kill-${i}`, payload: { entityType: 'k', entityId: `k${i}`, data: { i } },
      }));
      await new Promise((resolve) => setTimeout(resolve, 5));
      await stopServer(server, 'SIGKILL');
      await startAgain(server);
      const results = await Promise.all(all);
      expect(new Set(results.map((r) => r.id)).size).to.equal(count);
      const stats = await serverStats(server);
      expect(stats.operationsApplied).to.equal(count);
      const kinds = (await serverEntities(server)).entities.filter((e) => e.entityType === 'k');
      expect(kinds).to.have.length(count);
    });

    it('delivers an operation queued before a reload, reporting it with an event on the new page', async () => {
      await stopServer(server);
      const before = mount();
      const lost = before.queueOperation({ type: 'upsert', id: 'survivor', payload: { entityType: 'note', entityId: 's', data: { text: 'kept' } } });
      await waitFor(() => before.getAttribute('pending') === '1', 'the operation stored');
      before.remove(); // the page goes away with the operation unsent
      const failure = await lost.then(() => undefined, (e: Error) => e);
      expect(failure?.message).to.contain('stays queued');
      await startAgain(server);
      const after = mount();
      const completed = recordEvents(after, ['operation_complete']);
      await waitFor(() => completed.some((e) => (e.detail as { id: string }).id === 'survivor'), 'operation_complete for survivor');
      expect((await serverEntities(server)).entities).to.deep.include({ entityType: 'note', entityId: 's', data: { text: 'kept' } });
      expect((await serverStats(server)).operationsApplied).to.equal(1);
      await waitFor(() => after.getAttribute('pending') === '0', 'pending = 0');
    });

    it('settles an operation whose element is removed while it is being stored, and delivers it later', async () => {
      await stopServer(server);
      const before = mount();
      await waitFor(() => before.getState().clientId !== '', 'the element ready');
      const queued = before.queueOperation({ type: 'upsert', id: 'mid-write', payload: { entityType: 'note', entityId: 'm', data: {} } });
      before.remove();
      const failure = await queued.then(() => undefined, (e: SyncError) => e);
      expect(failure?.code).to.equal('closed');
      await startAgain(server);
      const after = mount();
      const completed = recordEvents(after, ['operation_complete']);
      await waitFor(() => completed.some((e) => (e.detail as { id: string }).id === 'mid-write'), 'the operation delivered');
    });

    it('keeps the promise of a pending operation when a property change restarts the client', async () => {
      await stopServer(server);
      const element = mount();
      const queued = element.queueOperation({ type: 'upsert', id: 'across', payload: { entityType: 'note', entityId: 'x', data: {} } });
      await waitFor(() => element.getAttribute('pending') === '1', 'the operation stored');
      element.token = 'new-token'; // restarts the client on the same database
      await startAgain(server);
      expect((await queued).id).to.equal('across');
      expect((await serverStats(server)).operationsApplied).to.equal(1);
    });

    it('does not dial again for a queued operation after disconnect(), and sends it on connect()', async () => {
      const element = mount();
      await liveAt(element);
      await element.disconnect();
      await waitFor(() => element.getAttribute('status') === 'disconnected', 'disconnected');
      const queued = element.queueOperation({ type: 'upsert', id: 'later', payload: { entityType: 'note', entityId: 'l', data: {} } });
      await waitFor(() => element.getAttribute('pending') === '1', 'the operation stored');
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(element.getAttribute('status')).to.equal('disconnected');
      expect((await serverStats(server)).operationFramesReceived).to.equal(0);
      await element.connect();
      expect((await queued).id).to.equal('later');
    });

    it('clearOperationQueue also drops an operation that is still being stored', async () => {
      await stopServer(server);
      const element = mount();
      await waitFor(() => element.getState().clientId !== '', 'the element ready');
      const queued = element.queueOperation({ type: 'upsert', id: 'racing', payload: { entityType: 'c', entityId: 'r', data: {} } })
        .then(() => 'resolved', (e: Error) => e.message);
      expect(await element.clearOperationQueue()).to.equal(1);
      expect(await queued).to.equal('Operation cancelled due to client cleanup');
      expect(element.getAttribute('pending')).to.equal('0');
    });

    it('clearOperationQueue rejects every pending operation and sends none of them', async () => {
      await stopServer(server);
      const element = mount();
      const pending = [1, 2, 3].map((i) => element.queueOperation({ type: 'upsert', payload: { entityType: 'c', entityId: `c${i}`, data: {} } })
        .then(() => 'resolved', (e: Error) => e.message));
      await waitFor(() => element.getAttribute('pending') === '3', 'three pending');
      expect(await element.clearOperationQueue()).to.equal(3);
      expect(await Promise.all(pending)).to.deep.equal(Array(3).fill('Operation cancelled due to client cleanup'));
      await waitFor(() => element.getAttribute('pending') === '0', 'pending = 0');
      await startAgain(server);
      await liveAt(element);
      expect((await serverStats(server)).operationFramesReceived).to.equal(0);
    });

    it('refuses bad input at once and stores nothing', async () => {
      const element = mount();
      await liveAt(element);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      const bad: unknown[] = [
        { payload: {} },
        { type: 7, payload: {} },
        { type: 'upsert', payload: cyclic },
        { type: 'upsert', payload: { f: () => 1 } },
        { type: 'send_message', payload: 'text' },
        { type: 'upsert', payload: 'x'.repeat(1024 * 1024 + 1) },
      ];
      for (const [index, input] of bad.entries()) {
        const failure = await element.queueOperation(input as never).then(() => undefined, (e: SyncError) => e);
        expect(failure, `bad input #${index}`).to.be.instanceOf(SyncError);
        expect(failure!.code).to.equal('operation');
      }
      expect(element.getAttribute('pending')).to.equal('0');
      expect((await serverStats(server)).operationFramesReceived).to.equal(0);
    });

    it('resolves a send_message operation once written, sending its payload as the frame', async () => {
      const element = mount();
      await liveAt(element);
      const result = await element.queueOperation({ type: 'send_message', payload: { type: 'ping' } });
      expect(result.id).to.be.a('string');
      expect(element.getAttribute('pending')).to.equal('0');
    });
  });
});
