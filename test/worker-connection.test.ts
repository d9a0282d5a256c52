import { expect } from '@open-wc/testing';
import type { SyncState } from '../src/protocol/state.ts';
import { sleep } from './helpers/wait.ts';
import { WorkerHarness } from './worker/harness.ts';
import { MOCK_SERVER_URL } from './worker/mock-protocol.ts';

/** Small values so every reconnection happens within a few tens of milliseconds. */
const FAST = { heartbeatInterval: 5_000, backoffInitial: 10, backoffMax: 40 };

/**
 * A hidden page whose server refuses it, waiting 60 s for its next attempt, with the schedule's
 * clock at 0 since before the outage began and random() = 1.
 */
async function longHiddenWait(harness: WorkerHarness): Promise<void> {
  await harness.request({ type: 'visibility', visible: false });
  await harness.mock({ mock: 'clock', at: 0 });
  // random() = 0 first: a hidden page's delays are 0, so the attempts add up at once.
  await harness.mock({ mock: 'random', value: 0 });
  await harness.mock({ mock: 'refuse', on: true });
  await harness.request({ type: 'connect' });
  await harness.waitFor('six retries', () => (harness.eventsOf('reconnecting').length >= 6 ? true : undefined));
  await harness.mock({ mock: 'random', value: 1 });
  await harness.waitForEvent('reconnecting', (event) => event.delay === 60_000);
}

describe('sync worker: connection', () => {
  let harness: WorkerHarness | undefined;
  let second: WorkerHarness | undefined;

  afterEach(async () => {
    await second?.stop();
    await harness?.stop();
    harness = undefined;
    second = undefined;
  });

  it('sends sync with its clientId and lastLSN right after open, and in the URL', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, url: `${MOCK_SERVER_URL}?room=blue` } });
    const { frame } = await harness.connect();
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state.clientId).to.be.a('string').and.not.equal('');
    expect(frame).to.deep.equal({ type: 'sync', clientId: state.clientId, lastLSN: '0/0' });
    const url = new URL(harness.connections[0]!.url);
    expect(url.searchParams.get('room')).to.equal('blue');
    expect(url.searchParams.get('clientId')).to.equal(state.clientId);
    expect(url.searchParams.get('lastLSN')).to.equal('0/0');
    expect(url.search).to.contain('lastLSN=0%2F0');
  });

  it('answers every sync_request with a fresh sync carrying the token', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, clientId: 'client-7', token: 's3cret' } });
    await harness.connect();
    await harness.send({ type: 'changes', changes: [], lsn: '0/2A' });
    await harness.send({ type: 'sync_request' });
    const again = await harness.waitFor('a second sync', () => harness!.framesOf('sync')[1]);
    expect(again.frame).to.deep.equal({ type: 'sync', clientId: 'client-7', lastLSN: '0/2A', token: 's3cret' });
    await harness.send({ type: 'sync_request' });
    await harness.waitFor('a third sync', () => harness!.framesOf('sync')[2]);
    expect(harness.connections).to.have.length(1);
  });

  it('posts connected and a status snapshot that is frozen and replaced on change', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    const connected = await harness.waitForEvent('connected');
    expect(connected.lastLSN).to.equal('0/0');
    await harness.waitForState('connected', (state) => state.status === 'connected' && state.isConnected);
    const statuses = harness.eventsOf('status').map((event) => event.state.status);
    expect(statuses).to.include('connecting');
    expect(statuses.at(-1)).to.equal('connected');
  });

  it('keeps the clientId and lastLSN for a new worker on the same database', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    const first = await harness.connect();
    await harness.send({
      type: 'changes',
      changes: [{ type: 'update', entityType: 'todo', entityId: '1', data: { title: 'a' } }],
      lsn: '0/5',
    });
    await harness.waitForEvent('changes');
    await harness.stop({ keepDatabase: true });

    second = await WorkerHarness.start({ dbName: harness.dbName, config: FAST });
    harness = undefined;
    const state = await second.request<SyncState>({ type: 'get_status' });
    expect(state.clientId).to.equal(first.frame.clientId);
    expect(state.lastLSN).to.equal('0/5');
    const { frame } = await second.connect();
    expect(frame).to.deep.equal({ type: 'sync', clientId: first.frame.clientId, lastLSN: '0/5' });
    expect(new URL(second.connections[0]!.url).searchParams.get('lastLSN')).to.equal('0/5');
  });

  it('refuses a URL that is not ws: or wss: without opening a socket', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, url: 'javascript:alert(1)' } });
    await harness.request({ type: 'connect' });
    const error = await harness.waitForEvent('error');
    expect(error.code).to.equal('invalid_url');
    const state = await harness.request<SyncState>({ type: 'get_status' });
    expect(state.status).to.equal('error');
    await harness.request({ type: 'network', online: true });
    expect(harness.connections).to.have.length(0);
  });

  it('on a hidden page, grows the reconnection delay exponentially up to the cap, and resets it after sync_complete', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.request({ type: 'visibility', visible: false });
    await harness.mock({ mock: 'random', value: 1 });
    await harness.mock({ mock: 'refuse', on: true });
    await harness.request({ type: 'connect' });
    await harness.waitFor('five retries', () => (harness!.eventsOf('reconnecting').length >= 5 ? true : undefined));
    const delays = harness.eventsOf('reconnecting').slice(0, 5);
    expect(delays.map((event) => event.attempt)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(delays.map((event) => event.delay)).to.deep.equal([10, 20, 40, 40, 40]);

    await harness.mock({ mock: 'refuse', on: false });
    await harness.waitForFrame('sync');
    await harness.send({ type: 'sync_complete' });
    await harness.waitForState('attempts reset', (state) => state.reconnectAttempts === 0);
    const from = harness.events.length;
    await harness.mock({ mock: 'close', code: 1011, reason: 'restart' });
    const retry = await harness.waitForEvent('reconnecting', () => true, from);
    expect(retry).to.include({ attempt: 1, delay: 10 });
  });

  it('on a hidden page, uses full jitter: the delay is random() times the ceiling', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 100, backoffMax: 1_000 } });
    await harness.request({ type: 'visibility', visible: false });
    await harness.mock({ mock: 'random', value: 0.25 });
    await harness.mock({ mock: 'refuse', on: true });
    await harness.request({ type: 'connect' });
    const first = await harness.waitForEvent('reconnecting');
    expect(first.delay).to.equal(25);
  });

  it('on a visible page, keeps the delay within twice backoff-initial while the outage is young, then within a tenth of its age; sync_complete starts over', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffMax: 1_000 } });
    await harness.mock({ mock: 'clock', at: 0 });
    await harness.mock({ mock: 'random', value: 0.5 });
    await harness.mock({ mock: 'refuse', on: true });
    await harness.request({ type: 'connect' });
    await harness.waitFor('seven retries', () => (harness!.eventsOf('reconnecting').length >= 7 ? true : undefined));
    // The first retry full jitter, 0.5 of 10; then equal jitter, half the ceiling plus random()
    // times the other half: 0.75 of 20.
    expect(harness.eventsOf('reconnecting').slice(0, 7).map((event) => event.delay)).to.deep.equal([5, 15, 15, 15, 15, 15, 15]);

    // Four seconds into the outage a tenth of its age, 400 ms, is the ceiling.
    await harness.mock({ mock: 'clock', at: 4_000 });
    const aged = await harness.waitForEvent('reconnecting', () => true, harness.events.length);
    expect(aged.delay).to.equal(300);

    await harness.mock({ mock: 'refuse', on: false });
    await harness.waitForFrame('sync');
    await harness.send({ type: 'sync_complete' });
    await harness.waitForState('attempts reset', (state) => state.reconnectAttempts === 0);
    const from = harness.events.length;
    await harness.mock({ mock: 'close', code: 1011, reason: 'restart' });
    const retry = await harness.waitForEvent('reconnecting', () => true, from);
    expect(retry).to.include({ attempt: 1, delay: 5 });
  });

  it('after the network comes back, a failed dial retries as early in an outage', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffMax: 60_000 } });
    await harness.mock({ mock: 'clock', at: 0 });
    await harness.mock({ mock: 'random', value: 0 });
    await harness.mock({ mock: 'refuse', on: true });
    await harness.request({ type: 'connect' });
    await harness.waitFor('fourteen retries', () => (harness!.eventsOf('reconnecting').length >= 14 ? true : undefined));
    // Ten minutes into the outage: a tenth of that caps the ceiling at backoff-max, 60 s.
    await harness.mock({ mock: 'clock', at: 600_000 });
    const late = await harness.waitForEvent('reconnecting', () => true, harness.events.length);
    expect(late.delay).to.equal(30_000);

    await harness.request({ type: 'network', online: false });
    const dials = harness.dials.length;
    const from = harness.events.length;
    await harness.request({ type: 'network', online: true });
    expect(harness.dials).to.have.length(dials + 1); // at once: reported as the socket is made, before the answer
    const retry = await harness.waitForEvent('reconnecting', () => true, from);
    expect(retry).to.include({ attempt: late.attempt + 1, delay: 10 });
  });

  it('a page that becomes visible brings a hidden wait forward: at once after 1 s of waiting, else on the visible schedule', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 3_000, backoffMax: 60_000 } });
    await longHiddenWait(harness);
    const from = harness.events.length;
    // Back 0 ms after the last attempt: a visible page's delay now, 3 to 6 s here, not a dial at once.
    await harness.request({ type: 'visibility', visible: true });
    await sleep(300); // a dial at once would come within a few ms; the visible schedule's comes after 3 s at the soonest
    expect(harness.eventsOf('reconnecting', from)).to.have.length(0);

    await harness.request({ type: 'visibility', visible: false });
    await harness.mock({ mock: 'clock', at: 1_000 });
    await harness.request({ type: 'visibility', visible: true });
    await harness.waitForEvent('reconnecting', () => true, from);
  });

  it('focus brings a wait forward to 5 s after the last attempt, and dials at once after that', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 1_000, backoffMax: 60_000 } });
    await longHiddenWait(harness);
    const from = harness.events.length;
    await harness.request({ type: 'wake', reason: 'focus' });
    await harness.mock({ mock: 'clock', at: 4_999 });
    await harness.request({ type: 'wake', reason: 'focus' });
    await sleep(300); // a dial at once would come within a few ms; the one focus schedules is 5 s after the last attempt
    expect(harness.eventsOf('reconnecting', from)).to.have.length(0);
    await harness.mock({ mock: 'clock', at: 5_000 });
    await harness.request({ type: 'wake', reason: 'focus' });
    const retry = await harness.waitForEvent('reconnecting', () => true, from);
    expect(retry.delay, 'the page is still hidden: the doubling schedule').to.equal(60_000);
  });

  it('another tab\'s page in view puts a hidden wait on the visible schedule, without changing this page\'s', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 1_000, backoffMax: 60_000 } });
    await longHiddenWait(harness);
    const from = harness.events.length;
    await harness.mock({ mock: 'random', value: 0 });
    // Redrawn as a visible page draws, from the last attempt: 1 to 2 s here, 1 s at random() = 0.
    await harness.request({ type: 'wake', reason: 'visible' });
    const retry = await harness.waitForEvent('reconnecting', () => true, from);
    expect(retry.delay, 'this page is still hidden: full jitter, 0 at random() = 0').to.equal(0);
  });

  it('does not dial while hidden beyond its schedule, nor while offline whatever the page does', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 3_000, backoffMax: 60_000 } });
    await longHiddenWait(harness);
    const dials = harness.dials.length;
    await harness.mock({ mock: 'clock', at: 30_000 });
    await sleep(300); // nothing but the 60 s timer may dial now: outlast the few ms a dial takes
    expect(harness.dials).to.have.length(dials);

    await harness.request({ type: 'network', online: false });
    await harness.waitForState('offline', (state) => state.status === 'offline');
    await harness.request({ type: 'visibility', visible: true });
    await harness.request({ type: 'wake', reason: 'focus' });
    await harness.request({ type: 'wake', reason: 'visible' });
    await sleep(300); // each of these would dial at once after a 30 s wait; none may while offline
    expect(harness.dials).to.have.length(dials);
    await harness.request({ type: 'network', online: true });
    expect(harness.dials).to.have.length(dials + 1);
  });

  it('reports one disconnected per dropped connection, not one per failed dial', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.mock({ mock: 'refuse', on: true });
    await harness.mock({ mock: 'close', code: 1011, reason: 'restart' });
    await harness.waitFor('three retries', () => (harness!.eventsOf('reconnecting').length >= 3 ? true : undefined));
    expect(harness.eventsOf('disconnected').map((event) => event.code)).to.deep.equal([1011]);
    await harness.mock({ mock: 'refuse', on: false });
    await harness.waitFor('a second connection', () => harness!.framesOf('sync').find(({ conn }) => conn === 2));
  });

  it('treats a socket that stays silent for two heartbeat intervals as dead and reconnects', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, heartbeatInterval: 100 } });
    await harness.mock({ mock: 'random', value: 0 });
    await harness.connect();
    await harness.waitForFrame('ping');
    await harness.mock({ mock: 'silence', on: true });
    const dropped = await harness.waitForEvent('disconnected');
    expect(dropped.willReconnect).to.equal(true);
    expect(dropped.reason).to.equal('heartbeat timeout');
    await harness.mock({ mock: 'silence', on: false });
    const resync = await harness.waitFor('a sync on a second connection', () =>
      harness!.framesOf('sync').find(({ conn }) => conn === 2));
    expect(resync.frame.lastLSN).to.equal('0/0');
    await harness.waitFor('the first socket closed at the server', () => (harness!.closed.includes(1) ? true : undefined));
  });

  it('keeps a socket alive while pongs arrive', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, heartbeatInterval: 50 } });
    await harness.connect();
    await harness.waitFor('six pings', () => (harness!.framesOf('ping').length >= 6 ? true : undefined));
    expect(harness.eventsOf('disconnected')).to.have.length(0);
    expect(harness.connections).to.have.length(1);
  });

  it('keeps a live socket when its own thread stalls for longer than the heartbeat window, and still drops a silent one', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, heartbeatInterval: 50 } });
    await harness.connect();
    await harness.waitFor('a ping', () => (harness!.framesOf('ping').length >= 1 ? true : undefined));
    await harness.mock({ mock: 'stall', ms: 400 });
    const pings = harness.framesOf('ping').length;
    await harness.waitFor('three more pings', () => (harness!.framesOf('ping').length >= pings + 3 ? true : undefined));
    expect(harness.eventsOf('disconnected'), 'the stall is not the socket\'s silence').to.have.length(0);
    await harness.mock({ mock: 'silence', on: true });
    const dropped = await harness.waitForEvent('disconnected');
    expect(dropped.reason).to.contain('heartbeat');
  });

  for (const code of [4000, 4001, 4099]) {
    it(`stops retrying after close code ${code} and reports it`, async () => {
      harness = await WorkerHarness.start({ config: FAST });
      await harness.connect();
      await harness.mock({ mock: 'close', code, reason: 'unauthorized' });
      const error = await harness.waitForEvent('error', (event) => event.code === 'closed');
      expect(error.message).to.contain(String(code)).and.contain('unauthorized');
      const dropped = await harness.waitForEvent('disconnected');
      expect(dropped).to.include({ code, reason: 'unauthorized', willReconnect: false });
      await harness.waitForState('error', (state) => state.status === 'error' && !state.isConnected);
      await sleep(150); // a retry would come from the backoff timer (10-40 ms here), so none can be waited for: outlast it several times
      expect(harness.connections).to.have.length(1);
      expect(harness.eventsOf('reconnecting')).to.have.length(0);
    });
  }

  it('retries after any other close code, e.g. 4100 and 1000', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.mock({ mock: 'close', code: 4100, reason: 'custom' });
    await harness.waitFor('a second connection', () => harness!.framesOf('sync').find(({ conn }) => conn === 2));
    await harness.mock({ mock: 'close', code: 1000, reason: 'bye' });
    await harness.waitFor('a third connection', () => harness!.framesOf('sync').find(({ conn }) => conn === 3));
    expect(harness.eventsOf('disconnected').map((event) => event.willReconnect)).to.deep.equal([true, true]);
  });

  it('does not dial while offline and dials at once when back online', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 60_000, backoffMax: 60_000 } });
    await harness.mock({ mock: 'random', value: 1 });
    await harness.request({ type: 'network', online: false });
    await harness.request({ type: 'connect' });
    const offline = await harness.request<SyncState>({ type: 'get_status' });
    expect(offline).to.include({ status: 'offline', online: false, isConnected: false });
    // A dial is reported as the socket is made, so before the answer to the connect request.
    expect(harness.dials).to.have.length(0);
    expect(harness.connections).to.have.length(0);
    await harness.request({ type: 'network', online: true });
    await harness.waitForFrame('sync');
    expect(harness.eventsOf('reconnecting')).to.have.length(0);
  });

  it('goes offline instead of retrying when the socket drops while offline', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.request({ type: 'network', online: false });
    await harness.mock({ mock: 'close', code: 1001, reason: 'going away' });
    await harness.waitForState('offline', (state) => state.status === 'offline');
    await sleep(100); // a retry would come from the backoff timer (10-40 ms here), so none can be waited for: outlast it several times
    expect(harness.connections).to.have.length(1);
    await harness.request({ type: 'network', online: true });
    await harness.waitFor('a second connection', () => harness!.framesOf('sync').find(({ conn }) => conn === 2));
  });

  it('force_connect dials now, skipping a backoff wait under way', async () => {
    harness = await WorkerHarness.start({ config: { ...FAST, backoffInitial: 60_000, backoffMax: 60_000 } });
    await harness.mock({ mock: 'random', value: 1 });
    await harness.connect();
    await harness.mock({ mock: 'close', code: 1011, reason: 'oops' });
    const waiting = await harness.waitForEvent('reconnecting');
    expect(waiting.delay).to.equal(60_000);
    await harness.request({ type: 'force_connect' });
    await harness.waitFor('a second connection', () => harness!.framesOf('sync').find(({ conn }) => conn === 2));
  });

  it('disconnect closes with 1000 and does not reconnect; connect starts again', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.request({ type: 'disconnect', graceful: true });
    const dropped = await harness.waitForEvent('disconnected');
    expect(dropped).to.include({ code: 1000, willReconnect: false });
    await harness.waitFor('the server saw the close', () => (harness!.closed.includes(1) ? true : undefined));
    await harness.waitForState('disconnected', (state) => state.status === 'disconnected');
    await sleep(100); // a reconnection would come from the backoff timer (10-40 ms here), so none can be waited for: outlast it several times
    expect(harness.connections).to.have.length(1);
    await harness.connect();
    expect(harness.connections).to.have.length(2);
  });

  it('connect() during a graceful disconnect that waits for buffered frames reports the close and re-sends the operations in flight once', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    await harness.connect();
    await harness.queue({ id: 'a', seq: 1 });
    await harness.queue({ id: 'b', seq: 2 });
    await harness.waitFor('two operations', () => (harness!.framesOf('operation').length === 2 ? true : undefined));
    // Frames still waiting to leave: the graceful disconnect polls until they are gone.
    await harness.mock({ mock: 'buffered', amount: 64 });
    const disconnecting = harness.request({ type: 'disconnect', graceful: true });
    await harness.request({ type: 'connect' });
    expect(harness.eventsOf('disconnected')).to.have.length(0); // still flushing
    await harness.mock({ mock: 'buffered', amount: 0 });
    await disconnecting;
    const dropped = await harness.waitForEvent('disconnected');
    expect(dropped).to.include({ code: 1000, willReconnect: true });
    const resent = await harness.waitFor('both operations on the second connection', () => {
      const again = harness!.framesOf('operation').filter(({ conn }) => conn === 2);
      return again.length === 2 ? again : undefined;
    });
    expect(resent.map(({ frame }) => (frame.operation as { id: string }).id)).to.deep.equal(['a', 'b']);
    await harness.send({ type: 'operation_complete', id: 'a' }, { type: 'operation_complete', id: 'b' });
    await harness.waitFor('two completions', () => (harness!.eventsOf('operation_complete').length === 2 ? true : undefined));
    await harness.waitForState('none pending', (state) => state.pendingOperations === 0 && state.status === 'connected');
    await harness.barrier();
    expect(harness.framesOf('operation').filter(({ conn }) => conn === 2)).to.have.length(2);
    expect(harness.connections).to.have.length(2);
    // An answer is posted as it comes; its record is deleted just after.
    await harness.waitForSettled('a', 'b');
    expect(await harness.outboxIds()).to.deep.equal([]);
  });

  it('answers sync and send_message with an error while not connected', async () => {
    harness = await WorkerHarness.start({ config: FAST });
    const failures = await Promise.all([
      harness.request({ type: 'sync' }).then(() => 'ok', (error: Error) => error.name),
      harness.request({ type: 'send_message', payload: { type: 'x' } }).then(() => 'ok', (error: Error) => error.name),
    ]);
    expect(failures).to.deep.equal(['InvalidStateError', 'InvalidStateError']);
    await harness.connect();
    await harness.request({ type: 'send_message', payload: { type: 'hello', n: 1 } });
    const raw = await harness.waitForFrame('hello');
    expect(raw.frame).to.deep.equal({ type: 'hello', n: 1 });
    await harness.request({ type: 'sync' });
    await harness.waitFor('a second sync', () => harness!.framesOf('sync')[1]);
  });

  it('answers every request exactly once, malformed ones with an error', async () => {
    harness = await WorkerHarness.start({ init: false });
    const beforeInit = await harness.request({ type: 'connect' }).then(() => 'ok', (error: Error) => error.name);
    expect(beforeInit).to.equal('InvalidStateError');
    const malformed = await harness
      .request({ type: 'disconnect', graceful: 'yes' } as never)
      .then(() => 'ok', (error: Error) => error.name);
    expect(malformed).to.equal('RequestError');
    const unknown = await harness.request({ type: 'launch' } as never).then(() => 'ok', (error: Error) => error.name);
    expect(unknown).to.equal('RequestError');
    const signals = await Promise.all([
      harness.request({ type: 'visibility' } as never),
      harness.request({ type: 'visibility', visible: 'hidden' } as never),
      harness.request({ type: 'wake' } as never),
      harness.request({ type: 'wake', reason: 'blur' } as never),
    ].map((answer) => answer.then(() => 'ok', (error: Error) => `${error.name}: ${error.message}`)));
    expect(signals).to.deep.equal([
      'RequestError: "visible" must be a boolean',
      'RequestError: "visible" must be a boolean',
      'RequestError: "reason" must be one of visible, focus',
      'RequestError: "reason" must be one of visible, focus',
    ]);
    // Before init they change nothing and fail nothing: they only matter to a connection.
    expect(await harness.request({ type: 'wake', reason: 'focus' }).then(() => 'ok')).to.equal('ok');
    const state = await harness.request<SyncState>({ type: 'init', config: harness.config });
    expect(state.clientId).to.not.equal('');
    const twice = await harness.request({ type: 'init', config: harness.config }).then(() => 'ok', (error: Error) => error.name);
    expect(twice).to.equal('InvalidStateError');
  });
});
