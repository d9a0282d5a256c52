import { expect } from '@open-wc/testing';
import '../src/index.ts';
import { OperationRejectedError, SyncError } from '../src/protocol/errors.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { compareLSN } from '../src/protocol/lsn.ts';
import { DEFAULT_IN_FLIGHT_WINDOW } from '../src/worker/outbox.ts';
import type { OperationResult } from '../src/protocol/state.ts';
import { createSyncElement, deleteDatabase, isLive, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { sleep, waitFor } from './helpers/wait.ts';

const FAST = { 'backoff-initial': '50', 'backoff-max': '300' };

describe('<sync-connection> against the reference server', () => {
  const server = useReferenceServer({ batchSize: 100 });
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

  beforeEach(() => {
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const element of elements.splice(0)) element.remove();
    await deleteDatabase(dbName);
  });

  it('catches up with what the server has and reflects it in its attributes', async () => {
    const lsn = await server.post(notes(3));
    const element = mount();
    const events = record(element, ['connected', 'sync_started', 'sync_completed']);
    await events.waitFor('sync_completed');
    expect(events.types()).to.deep.equal(['connected', 'sync_started', 'sync_completed']);
    expect(events.of('sync_completed')).to.deep.equal([{ lsn }]);
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
    const events = record(element, ['changes']);
    const lsn = await server.post([{ type: 'update', entityType: 'note', entityId: 'live', data: { text: 'hi' } }]);
    const live = await events.waitFor('changes');
    expect(live).to.deep.include({ lsn });
    expect((await element.getEntity('note', 'live'))?.data).to.deep.equal({ text: 'hi' });
    element.remove();
    // A second element on the same database starts from the stored LSN: nothing is replayed.
    await server.post(notes(1, 100));
    const again = mount();
    const replayed = record(again, ['changes', 'sync_completed']);
    await replayed.waitFor('sync_completed');
    const applied = replayed.of('changes').flatMap(({ changes }) => changes.map((c) => c.entityId));
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
    await server.stop();
    await waitFor(() => element.getAttribute('status') === 'reconnecting', 'reconnecting');
    window.dispatchEvent(new Event('offline'));
    await waitFor(() => element.getAttribute('status') === 'offline', 'offline');
    await server.startAgain();
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
    const events = record(element, ['disconnected', 'reconnecting', 'connected', 'sync_completed']);
    await server.stop();
    await events.waitFor('reconnecting');
    expect(events.of('disconnected')[0]?.willReconnect).to.equal(true);
    const queued = element.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: 'offline', data: { text: 'x' } } });
    await server.startAgain();
    const result = await queued;
    await liveAt(element);
    expect(events.count('connected')).to.be.greaterThan(0);
    expect((await server.entities()).entities.map((e) => e.entityId)).to.include('offline');
    expect(result.lsn).to.be.a('string');
  });

  it('uses a token set right after the element was inserted, as frameworks do', async () => {
    await server.start({ token: 'let-me-in' });
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName, ...FAST });
    elements.push(element);
    document.body.append(element);
    element.token = 'let-me-in';
    await liveAt(element);
    expect((await server.stats()).clients).to.equal(1);
  });

  it('keeps its connection when moved elsewhere in the page', async () => {
    const element = mount();
    await liveAt(element);
    const seen = record(element, ['disconnected', 'connected']);
    const marker = record(element, ['changes']);
    const box = document.createElement('div');
    document.body.append(box);
    box.append(element);
    // A change posted after the move reaches the element over a connection: had the move stopped
    // the client, it gets there only after a new `connected`, or never.
    const lsn = await server.post(notes(1, 500));
    await marker.waitFor('changes', (detail) => detail.lsn === lsn);
    expect(seen.entries).to.have.length(0);
    expect(element.getAttribute('status')).to.equal('connected');
    expect((await server.stats()).clients).to.equal(1);
    box.remove();
  });

  it('dispatches invalid_url after insertion, so a listener added just after append hears it', async () => {
    const element = createSyncElement({ url: 'file:///etc/passwd', 'db-name': dbName });
    elements.push(element);
    document.body.append(element);
    const errors = record(element, ['error']);
    expect((await errors.waitFor('error')).code).to.equal('invalid_url');
  });

  it('error with code invalid_url for a javascript: url, which does not bubble', async () => {
    let bubbled = false;
    const onDocument = () => { bubbled = true; };
    document.addEventListener('error', onDocument);
    const element = createSyncElement({ url: 'javascript:alert(1)', 'db-name': dbName });
    elements.push(element);
    const errors = record(element, ['error']);
    document.body.append(element);
    await errors.waitFor('error');
    document.removeEventListener('error', onDocument);
    const [error] = errors.entries;
    expect(error?.detail.code).to.equal('invalid_url');
    expect(error?.event?.bubbles).to.equal(false);
    expect(error?.event?.composed).to.equal(false);
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
    expect((await server.stats()).clients).to.equal(1);
    element.remove();
    await waitFor(() => terminated === 1, 'the worker terminated');
    await waitFor(async () => (await server.stats()).clients === 0, 'the server to see the socket closed');
    const failure = await element.queueOperation({ type: 'upsert', payload: {} }).catch((e: SyncError) => e);
    expect(failure).to.be.instanceOf(SyncError);
  });

  it('<sync-status> shows the status and a progress bar during catch-up', async () => {
    // Six records, so the catch-up comes as six frames and six progress steps.
    for (let i = 0; i < 6; i++) await server.post(notes(100, i * 100));
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
      const completed = record(element, ['operation_complete']);
      const result = await element.queueOperation({
        type: 'upsert', id: 'op-1', payload: { entityType: 'note', entityId: 'a', data: { text: 'A' } },
      });
      // When the promise resolves the server already holds the write.
      const atServer = await server.entities();
      expect(atServer.entities).to.deep.include({ entityType: 'note', entityId: 'a', data: { text: 'A' } });
      expect(result.id).to.equal('op-1');
      expect(compareLSN(result.lsn!, atServer.lsn)).to.be.at.most(0);
      expect(completed.of('operation_complete')).to.deep.equal([{ id: 'op-1', lsn: result.lsn }]);
      await waitFor(async () => (await element.getEntity('note', 'a')) !== undefined, 'the change echoed back');
      expect(element.getAttribute('pending')).to.equal('0');
    });

    it('rejects with the server message when the server answers operation_error', async () => {
      const element = mount();
      await liveAt(element);
      const errors = record(element, ['operation_error']);
      const failure = await element.queueOperation({ type: 'no_such_type', id: 'bad-1', payload: {} })
        .then(() => undefined, (error: unknown) => error);
      expect(failure).to.be.instanceOf(OperationRejectedError);
      expect((failure as OperationRejectedError).operationId).to.equal('bad-1');
      expect(errors.of('operation_error')[0]?.message).to.equal((failure as Error).message);
      await waitFor(() => element.getAttribute('pending') === '0', 'pending back to 0');
    });

    it('counts pending operations while the server is away and sends them by priority, FIFO within one', async () => {
      const element = mount();
      await liveAt(element);
      await server.stop();
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
      await server.startAgain();
      const settled = await Promise.all([...results].map(async ([id, p]) => ({ id, lsn: (await p).lsn! })));
      settled.sort((a, b) => compareLSN(a.lsn, b.lsn));
      expect(settled.map((s) => s.id)).to.deep.equal(['high-1', 'high-2', 'mid', 'low-1', 'low-2']);
      await waitFor(() => element.getAttribute('pending') === '0', 'pending = 0');
    });

    it('applies every operation exactly once when the server is killed in the middle of a stream', async () => {
      const element = mount();
      await liveAt(element);
      // More than the worker keeps in flight at once: the stream takes more than one round trip.
      const count = DEFAULT_IN_FLIGHT_WINDOW + 100;
      const seen = record(element, ['operation_complete', 'disconnected']);
      const all = Array.from({ length: count }, (_, i) => element.queueOperation({
        type: 'upsert', id: `kill-${i}`, payload: { entityType: 'k', entityId: `k${i}`, data: { i } },
      }));
      // Killed as the first acknowledgement arrives: the stream is under way.
      await seen.waitFor('operation_complete');
      await server.stop('SIGKILL');
      await seen.waitFor('disconnected');
      const acknowledged = seen.types().indexOf('disconnected');
      expect(acknowledged, 'operations acknowledged before the socket died: some, not all').to.be.within(1, count - 1);
      await server.startAgain();
      const results = await Promise.all(all);
      expect(new Set(results.map((r) => r.id)).size).to.equal(count);
      const stats = await server.stats();
      expect(stats.operationsApplied).to.equal(count);
      const kinds = (await server.entities()).entities.filter((e) => e.entityType === 'k');
      expect(kinds).to.have.length(count);
    });

    it('delivers an operation queued before a reload, reporting it with an event on the new page', async () => {
      await server.stop();
      const before = mount();
      const lost = before.queueOperation({ type: 'upsert', id: 'survivor', payload: { entityType: 'note', entityId: 's', data: { text: 'kept' } } });
      await waitFor(() => before.getAttribute('pending') === '1', 'the operation stored');
      before.remove(); // the page goes away with the operation unsent
      const failure = await lost.then(() => undefined, (e: Error) => e);
      expect(failure?.message).to.contain('stays queued');
      await server.startAgain();
      const after = mount();
      const completed = record(after, ['operation_complete']);
      await completed.waitFor('operation_complete', ({ id }) => id === 'survivor');
      expect((await server.entities()).entities).to.deep.include({ entityType: 'note', entityId: 's', data: { text: 'kept' } });
      expect((await server.stats()).operationsApplied).to.equal(1);
      await waitFor(() => after.getAttribute('pending') === '0', 'pending = 0');
    });

    it('settles an operation whose element is removed while it is being stored, and delivers it later', async () => {
      await server.stop();
      const before = mount();
      await waitFor(() => before.getState().clientId !== '', 'the element ready');
      const queued = before.queueOperation({ type: 'upsert', id: 'mid-write', payload: { entityType: 'note', entityId: 'm', data: {} } });
      before.remove();
      const failure = await queued.then(() => undefined, (e: SyncError) => e);
      expect(failure?.code).to.equal('closed');
      await server.startAgain();
      const after = mount();
      const completed = record(after, ['operation_complete']);
      await completed.waitFor('operation_complete', ({ id }) => id === 'mid-write');
    });

    it('keeps the promise of a pending operation when a property change restarts the client', async () => {
      await server.stop();
      const element = mount();
      const queued = element.queueOperation({ type: 'upsert', id: 'across', payload: { entityType: 'note', entityId: 'x', data: {} } });
      await waitFor(() => element.getAttribute('pending') === '1', 'the operation stored');
      element.token = 'new-token'; // restarts the client on the same database
      await server.startAgain();
      expect((await queued).id).to.equal('across');
      expect((await server.stats()).operationsApplied).to.equal(1);
    });

    it('does not dial again for a queued operation after disconnect(), and sends it on connect()', async () => {
      const element = mount();
      await liveAt(element);
      await element.disconnect();
      await waitFor(() => element.getAttribute('status') === 'disconnected', 'disconnected');
      const queued = element.queueOperation({ type: 'upsert', id: 'later', payload: { entityType: 'note', entityId: 'l', data: {} } });
      await waitFor(() => element.getAttribute('pending') === '1', 'the operation stored');
      await sleep(300); // a dial the page starts by itself goes through a Web Lock and the worker, and nothing marks one that did not happen: wait past the backoff cap
      expect(element.getAttribute('status')).to.equal('disconnected');
      expect((await server.stats()).operationFramesReceived).to.equal(0);
      await element.connect();
      expect((await queued).id).to.equal('later');
    });

    it('clearOperationQueue also drops an operation that is still being stored', async () => {
      await server.stop();
      const element = mount();
      await waitFor(() => element.getState().clientId !== '', 'the element ready');
      const queued = element.queueOperation({ type: 'upsert', id: 'racing', payload: { entityType: 'c', entityId: 'r', data: {} } })
        .then(() => 'resolved', (e: Error) => e.message);
      expect(await element.clearOperationQueue()).to.equal(1);
      expect(await queued).to.equal('Operation cancelled due to client cleanup');
      expect(element.getAttribute('pending')).to.equal('0');
    });

    it('clearOperationQueue rejects every pending operation and sends none of them', async () => {
      await server.stop();
      const element = mount();
      const pending = [1, 2, 3].map((i) => element.queueOperation({ type: 'upsert', payload: { entityType: 'c', entityId: `c${i}`, data: {} } })
        .then(() => 'resolved', (e: Error) => e.message));
      await waitFor(() => element.getAttribute('pending') === '3', 'three pending');
      expect(await element.clearOperationQueue()).to.equal(3);
      expect(await Promise.all(pending)).to.deep.equal(Array(3).fill('Operation cancelled due to client cleanup'));
      await waitFor(() => element.getAttribute('pending') === '0', 'pending = 0');
      await server.startAgain();
      await liveAt(element);
      expect((await server.stats()).operationFramesReceived).to.equal(0);
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
      expect((await server.stats()).operationFramesReceived).to.equal(0);
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
