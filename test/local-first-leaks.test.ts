import { expect } from '@open-wc/testing';
import '../src/index.ts';
import { WorkerSyncService } from '../src/client/sync-service.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { nextTask, Observed } from './helpers/observed.ts';
import { notes, useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

/**
 * What the page holds open, counted from now on: event listeners (but those of IndexedDB requests
 * and transactions, which go with them), BroadcastChannels and pending timers.
 */
function countHeld() {
  const listeners = new Set<string>();
  const ids = new WeakMap<object, number>();
  let nextId = 1;
  const id = (value: object) => {
    if (!ids.has(value)) ids.set(value, nextId++);
    return ids.get(value)!;
  };
  const key = (target: object, type: string, listener: unknown, options: unknown) =>
    `${id(target)}:${type}:${typeof listener === 'object' || typeof listener === 'function' ? id(listener as object) : 'x'}:${typeof options === 'boolean' ? options : Boolean((options as { capture?: boolean } | undefined)?.capture)}`;
  const add = EventTarget.prototype.addEventListener;
  const remove = EventTarget.prototype.removeEventListener;
  EventTarget.prototype.addEventListener = function (this: EventTarget, type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions) {
    // An IndexedDB request or transaction holds its listeners until it settles, then is garbage.
    if (listener && !(this instanceof IDBRequest) && !(this instanceof IDBTransaction)) {
      const k = key(this, type, listener, options);
      listeners.add(k);
      const signal = typeof options === 'object' ? options.signal : undefined;
      if (signal) add.call(signal, 'abort', () => listeners.delete(k), { once: true });
    }
    return add.call(this, type, listener, options);
  };
  EventTarget.prototype.removeEventListener = function (this: EventTarget, type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions) {
    if (listener) listeners.delete(key(this, type, listener, options));
    return remove.call(this, type, listener, options);
  };
  let channels = 0;
  const Channel = globalThis.BroadcastChannel;
  globalThis.BroadcastChannel = class extends Channel {
    #open = true;
    constructor(name: string) {
      super(name);
      channels += 1;
    }
    override close(): void {
      if (this.#open) channels -= 1;
      this.#open = false;
      super.close();
    }
  };
  const timers = new Set<number>();
  const setTimer = globalThis.setTimeout;
  const clearTimer = globalThis.clearTimeout;
  globalThis.setTimeout = ((handler: TimerHandler, delay?: number, ...args: unknown[]) => {
    const timer: number = setTimer(() => {
      timers.delete(timer);
      if (typeof handler === 'function') (handler as (...a: unknown[]) => void)(...args);
    }, delay) as unknown as number;
    timers.add(timer);
    return timer;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((timer?: number) => {
    if (timer !== undefined) timers.delete(timer);
    clearTimer(timer);
  }) as typeof clearTimeout;
  return {
    now: () => ({ listeners: listeners.size, channels, timers: timers.size }),
    types: () => [...listeners].map((k) => k.split(':')[1]),
    restore() {
      EventTarget.prototype.addEventListener = add;
      EventTarget.prototype.removeEventListener = remove;
      globalThis.BroadcastChannel = Channel;
      globalThis.setTimeout = setTimer;
      globalThis.clearTimeout = clearTimer;
    },
  };
}

describe('live queries leave nothing behind', () => {
  const server = useReferenceServer();
  let dbName: string;
  const elements: SyncConnectionElement[] = [];

  function mount(): SyncConnectionElement {
    const element = createSyncElement({ url: server.wsUrl, 'db-name': dbName });
    document.body.append(element);
    elements.push(element);
    return element;
  }

  beforeEach(() => {
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    for (const element of elements.splice(0)) element.remove();
    await deleteDatabase(dbName);
  });

  it('1,000 observe/unsubscribe cycles leave no listener, channel or timer', async function () {
    this.timeout(30_000);
    const held = countHeld();
    try {
      const element = mount();
      await server.post(notes(50));
      await waitFor(async () => (await element.getEntities('note')).length === 50, 'the notes synced');
      const warm = new Observed();
      const stop = element.observe('note', warm.listener);
      await warm.waitFor('the first result', () => true);
      stop();
      await nextTask();
      const before = held.now();
      for (let i = 0; i < 1000; i++) {
        const observed = new Observed();
        const type = i % 3 === 0 ? `other-${i}` : 'note';
        const unsubscribe = element.observe(type, observed.listener, i % 2 ? { filter: (row) => row.entityId.endsWith('1'), limit: 3 } : undefined);
        if (i % 10 === 0) await observed.waitFor('its first result', () => true);
        unsubscribe();
      }
      expect(held.now(), JSON.stringify(held.types())).to.deep.equal(before);
      // Unsubscribed listeners hear nothing more.
      const after = new Observed();
      element.observe('note', after.listener);
      await after.waitFor('the first result', () => true);
      const lsn = await server.post(notes(1, 900));
      await waitFor(() => element.getAttribute('last-lsn') === lsn, 'the change stored');
      await after.waitFor('the change', (rows) => rows.length === 51);
    } finally {
      held.restore();
    }
  });

  it('stops the element\'s live queries when the element is removed', async () => {
    const element = mount();
    const other = mount(); // the same database, still in the page
    const observed = new Observed();
    element.observe('note', observed.listener);
    await observed.waitFor('the first result', () => true);
    element.remove();
    await nextTask();
    const otherRows = new Observed();
    other.observe('note', otherRows.listener);
    const lsn = await server.post(notes(2));
    await waitFor(() => other.getAttribute('last-lsn') === lsn, 'the change stored');
    await otherRows.waitFor('the change in the element still there', (rows) => rows.length === 2);
    await nextTask();
    expect(observed.calls).to.have.length(1);
  });

  it('holds no query, and no type in memory, after 1,000 cycles on a client, and none after cleanup', async () => {
    const service = new WorkerSyncService({ url: server.wsUrl, dbName });
    try {
      await service.connect();
      for (let i = 0; i < 1000; i++) {
        const observed = new Observed();
        const stop = service.observe(i % 2 ? 'note' : `t${i % 7}`, observed.listener);
        if (i % 100 === 0) await observed.waitFor('its first result', () => true);
        stop();
      }
      expect(service.observers).to.equal(0);
      const kept = new Observed();
      service.observe('note', kept.listener);
      await kept.waitFor('the first result', () => true);
      expect(service.observers).to.equal(1);
    } finally {
      await service.cleanup();
    }
    expect(service.observers, 'cleanup stops every query').to.equal(0);
  });
});
