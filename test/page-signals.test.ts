import { expect } from '@open-wc/testing';
import { WorkerSyncService, type SyncServiceOptions } from '../src/client/sync-service.ts';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { sleep, waitFor } from './helpers/wait.ts';

type ServiceModule = typeof import('../src/client/sync-service.ts');
interface ServiceTab extends Window {
  tabReady?: boolean;
  syncService: ServiceModule;
}

/** What the page says of its visibility, as the browser would: the property, then the event. */
function setVisibility(doc: Document, state: DocumentVisibilityState): void {
  Object.defineProperty(doc, 'visibilityState', { configurable: true, get: () => state });
  doc.dispatchEvent(new Event('visibilitychange'));
}

/**
 * The page's signals reach the worker that holds the connection, this tab's or the leader's. The
 * mock worker's server refuses every dial, its jitter source and the schedule's clock are fixed,
 * so each retry shows as one `reconnecting` event at a known time.
 */
describe('page signals and the reconnection', () => {
  let mock: MockWorkers;
  let dbName: string;
  const services: WorkerSyncService[] = [];
  const frames: HTMLIFrameElement[] = [];
  let retries: { attempt: number; delay: number }[];

  function options(backoffInitial: number): SyncServiceOptions {
    return { url: MockWorkers.url, dbName, createWorker: mock.create, backoffInitial, backoffMax: 60_000 };
  }

  async function startLeader(backoffInitial: number): Promise<WorkerSyncService> {
    const leader = new WorkerSyncService(options(backoffInitial));
    services.push(leader);
    leader.on('reconnecting', (detail) => retries.push(detail));
    await leader.connect();
    await waitFor(() => leader.getState().status === 'connected', 'the leader connected');
    return leader;
  }

  /** A follower in a document of its own, hidden until the test shows it. */
  async function startFollower(backoffInitial: number): Promise<{ service: WorkerSyncService; tab: ServiceTab }> {
    const frame = document.createElement('iframe');
    frame.src = '/test/fixtures/service-tab.html';
    document.body.append(frame);
    frames.push(frame);
    await waitFor(() => (frame.contentWindow as ServiceTab | null)?.tabReady === true, 'the tab to load');
    const tab = frame.contentWindow as ServiceTab;
    setVisibility(tab.document, 'hidden');
    const service = new tab.syncService.WorkerSyncService(options(backoffInitial));
    services.push(service);
    await service.connect();
    await waitFor(() => service.getState().role === 'follower' && service.getState().status === 'connected', 'a follower mirroring the leader');
    return { service, tab };
  }

  /** The server goes away and refuses the leader, which ends up waiting 60 s (random() = 1) with the clock at 0. */
  async function longWait(): Promise<void> {
    await mock.command({ mock: 'clock', at: 0 });
    // random() = 0 first: a hidden page's delays are 0, so the attempts add up at once.
    await mock.command({ mock: 'random', value: 0 });
    await mock.command({ mock: 'refuse', on: true });
    await mock.command({ mock: 'close', code: 1011, reason: 'restart' });
    await waitFor(() => retries.length >= 6, 'six retries');
    await mock.command({ mock: 'random', value: 1 });
    await waitFor(() => retries.at(-1)?.delay === 60_000, 'a 60 s wait');
  }

  function retriesAfter(count: number, what: string): Promise<void> {
    return waitFor(() => retries.length > count, what, 5_000);
  }

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
    retries = [];
    setVisibility(document, 'hidden');
  });

  afterEach(async () => {
    for (const service of services.splice(0).reverse()) await service.cleanup();
    for (const frame of frames.splice(0)) frame.remove();
    mock.terminateAll();
    Reflect.deleteProperty(document, 'visibilityState');
    await deleteDatabase(dbName);
  });

  it('a page that becomes visible has its worker dial at once after a 1 s wait; the focus after a 5 s one', async () => {
    await startLeader(3_000);
    await longWait();
    let seen = retries.length;
    await mock.command({ mock: 'clock', at: 1_000 });
    setVisibility(document, 'visible');
    // Redrawn on a visible page's schedule instead, the dial would come 3 to 6 s from now.
    await retriesAfter(seen, 'a dial at once');

    // Visible, 1 s into the outage: the next wait is 3 to 6 s (6 at random() = 1).
    await waitFor(() => retries.at(-1)?.delay === 6_000, 'a visible wait of 6 s');
    seen = retries.length;
    await mock.command({ mock: 'clock', at: 6_000 });
    window.dispatchEvent(new Event('focus'));
    await retriesAfter(seen, 'a dial at once');
  });

  it('a hidden page stays on the doubling schedule, and nothing but the page brings its wait forward', async () => {
    await startLeader(3_000);
    await longWait();
    const seen = retries.length;
    await mock.command({ mock: 'clock', at: 30_000 });
    await sleep(300); // only the 60 s timer could dial now: outlast the few ms a dial at once takes
    expect(retries).to.have.length(seen);
  });

  it('a follower page that becomes visible or gets the focus has the hidden leader dial', async () => {
    await startLeader(3_000);
    const follower = await startFollower(3_000);
    await longWait();
    let seen = retries.length;
    await mock.command({ mock: 'clock', at: 1_000 });
    setVisibility(follower.tab.document, 'visible');
    await retriesAfter(seen, 'the leader dialling at once');

    // The leader, still hidden, waits 60 s again, and the visible follower has that redrawn: 3 to 6 s.
    await waitFor(() => retries.at(-1)?.delay === 60_000, 'the leader waiting 60 s');
    seen = retries.length;
    await mock.command({ mock: 'clock', at: 6_000 });
    follower.tab.dispatchEvent(new Event('focus'));
    await retriesAfter(seen, 'the leader dialling at once');
  });

  it('a visible follower keeps a hidden leader on the visible schedule, one retry after another', async () => {
    await startLeader(1_000);
    const follower = await startFollower(1_000);
    setVisibility(follower.tab.document, 'visible');
    await longWait();
    // Each 60 s wait the hidden leader draws is redrawn as a visible page's: 1 to 2 s here.
    for (let i = 0; i < 2; i++) {
      const seen = retries.length;
      await retriesAfter(seen, 'the next retry within 2 s');
      expect(retries.at(-1)?.delay).to.equal(60_000);
    }
  });
});
