import { expect } from '@open-wc/testing';
import { SyncError } from '../src/protocol/errors.ts';
import type { WorkerEndpoint } from '../src/client/worker-endpoint.ts';
import { SyncWorkerManager } from '../src/client/worker-manager.ts';
import type { SyncErrorDetail } from '../src/protocol/state.ts';
import type { PageToWorker, WorkerEvent, WorkerToPage } from '../src/protocol/worker-messages.ts';
import { waitFor } from './helpers/wait.ts';

/** A worker stand-in over a MessageChannel: the test plays the worker on `port2`. */
function channelWorker() {
  const channel = new MessageChannel();
  const received: PageToWorker[] = [];
  let terminated = false;
  channel.port2.onmessage = (event: MessageEvent<PageToWorker>) => received.push(event.data);
  const target = new EventTarget();
  channel.port1.onmessage = (event) => target.dispatchEvent(new MessageEvent('message', { data: event.data }));
  const endpoint = {
    postMessage: (message: PageToWorker) => channel.port1.postMessage(message),
    addEventListener: (type: string, listener: EventListener, options?: AddEventListenerOptions) =>
      target.addEventListener(type, listener, options),
    terminate: () => { terminated = true; channel.port1.close(); },
  } as unknown as WorkerEndpoint;
  return {
    endpoint,
    received,
    reply: (message: WorkerToPage) => channel.port2.postMessage(message),
    crash: (message: string) => target.dispatchEvent(new ErrorEvent('error', { message, cancelable: true })),
    get terminated() { return terminated; },
  };
}

describe('SyncWorkerManager', () => {
  it('matches each answer to its request, whatever the order of answers', async () => {
    const fake = channelWorker();
    const manager = new SyncWorkerManager(() => fake.endpoint, { onEvent() {}, onWorkerError() {} });
    manager.start();
    const first = manager.request({ type: 'get_status' });
    const second = manager.request({ type: 'sync' }).then(() => undefined, (error: Error) => error);
    await waitFor(() => fake.received.length === 2, 'both requests at the worker');
    const [a, b] = fake.received;
    fake.reply({ type: 'result', requestId: b!.requestId, ok: false, error: { name: 'SyncError', message: 'not connected' } });
    fake.reply({ type: 'result', requestId: a!.requestId, ok: true, value: 'A' });
    expect(await first).to.equal('A');
    const failure = await second;
    expect(failure?.message).to.equal('not connected');
    expect(failure?.name).to.equal('SyncError');
    manager.terminate();
  });

  it('hands events on and ignores answers to unknown requests', async () => {
    const fake = channelWorker();
    const events: WorkerEvent[] = [];
    const manager = new SyncWorkerManager(() => fake.endpoint, { onEvent: (e) => events.push(e), onWorkerError() {} });
    manager.start();
    fake.reply({ type: 'result', requestId: 999, ok: true });
    fake.reply({ type: 'sync_completed', lsn: '0/10' });
    await waitFor(() => events.length === 1, 'the event handed on');
    expect(events[0]).to.deep.equal({ type: 'sync_completed', lsn: '0/10' });
    manager.terminate();
  });

  it('rejects every pending request and reports a worker error when the worker dies', async () => {
    const fake = channelWorker();
    const errors: SyncErrorDetail[] = [];
    const manager = new SyncWorkerManager(() => fake.endpoint, { onEvent() {}, onWorkerError: (d) => errors.push(d) });
    manager.start();
    const pending = [manager.request({ type: 'connect' }), manager.request({ type: 'get_status' })];
    fake.crash('boom');
    const outcomes = await Promise.allSettled(pending);
    expect(outcomes.map((o) => o.status)).to.deep.equal(['rejected', 'rejected']);
    const reason = (outcomes[0] as PromiseRejectedResult).reason as SyncError;
    expect(reason.code).to.equal('worker');
    expect(reason.message).to.contain('boom');
    expect(errors).to.have.length(1);
    expect(errors[0]!.code).to.equal('worker');
    expect(fake.terminated).to.equal(true);
    expect(manager.running).to.equal(false);
  });

  it('reports a worker that fails to load', async () => {
    const errors: SyncErrorDetail[] = [];
    const manager = new SyncWorkerManager(
      () => new Worker(new URL('./fixtures/throwing-worker.js', import.meta.url), { type: 'module' }) as WorkerEndpoint,
      { onEvent() {}, onWorkerError: (d) => errors.push(d) },
    );
    manager.start();
    const request = manager.request({ type: 'get_status' });
    const failure = await request.then(() => undefined, (error: SyncError) => error);
    expect(failure?.code).to.equal('worker');
    expect(errors.map((e) => e.code)).to.deep.equal(['worker']);
  });

  it('rejects requests once terminated, and when never started', async () => {
    const fake = channelWorker();
    const manager = new SyncWorkerManager(() => fake.endpoint, { onEvent() {}, onWorkerError() {} });
    const early = await manager.request({ type: 'connect' }).then(() => undefined, (e: SyncError) => e);
    expect(early?.code).to.equal('worker');
    manager.start();
    const pending = manager.request({ type: 'connect' });
    manager.terminate('bye');
    const late = await pending.then(() => undefined, (e: SyncError) => e);
    expect(late?.message).to.equal('bye');
  });

  it('restarts a worker that died after its delay, preparing each worker it starts', async () => {
    const fakes: ReturnType<typeof channelWorker>[] = [];
    const errors: SyncErrorDetail[] = [];
    let prepared = 0;
    const manager = new SyncWorkerManager(() => {
      const fake = channelWorker();
      fakes.push(fake);
      return fake.endpoint;
    }, { onEvent() {}, onWorkerError: (d) => errors.push(d), prepare: async () => { prepared += 1; } }, { restartDelay: 20 });
    manager.start();
    await manager.ready;
    fakes[0]!.crash('boom');
    expect(manager.running).to.equal(false);
    expect(errors.map((e) => e.code)).to.deep.equal(['worker']);
    await waitFor(() => manager.running, 'the worker restarted');
    await manager.ready;
    expect(fakes).to.have.length(2);
    expect(prepared).to.equal(2);
    manager.terminate();
  });

  it('starts a worker waiting for its restart at once for whenReady, and none once terminated', async () => {
    const fakes: ReturnType<typeof channelWorker>[] = [];
    const manager = new SyncWorkerManager(() => {
      const fake = channelWorker();
      fakes.push(fake);
      return fake.endpoint;
    }, { onEvent() {}, onWorkerError() {} }, { restartDelay: 60_000 });
    manager.start();
    fakes[0]!.crash('boom');
    await manager.whenReady();
    expect(fakes, 'started long before the restart delay').to.have.length(2);
    expect(manager.running).to.equal(true);
    manager.terminate('bye');
    const refused = await manager.whenReady().then(() => undefined, (e: SyncError) => e);
    expect(refused?.code).to.equal('worker');
    expect(fakes).to.have.length(2);
  });
});
