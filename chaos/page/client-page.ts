/**
 * The page of one chaos client tab: a `<sync-connection>` on a database shared with the other
 * tabs of its client, a seeded stream of `queueOperation()` calls and the outcome of each, the
 * element's `error` events, and what the harness asks of it, on `window.chaos`.
 *
 * Operations, each naming itself in its data so that the server's log shows who applied what:
 * - `upsert` of `item/<its id>` with `{ op, by, n }`;
 * - `patch` of one of a few `shared/s<k>` with `{ op, <tab>: n }` (every tab writes them);
 * - `delete` of an item this tab upserted and saw acknowledged.
 */
import { Prng } from '../../test/helpers/prng.ts';
import { FAULT_CHANNEL } from './fault-injector.ts';
import type { MountOptions, Outcome, PlannedOperation, ReportedError, TabStatus } from './types.ts';

const BUNDLE = '/dist/sync-connection.js';
const SHARED_ENTITIES = 8;

/** What the page uses of `<sync-connection>`. */
interface SyncElement extends HTMLElement {
  queueOperation(operation: { id: string; type: string; payload: unknown }): Promise<{ id: string; lsn?: string }>;
  getEntities(type: string): Promise<{ entityType: string; entityId: string; data: unknown; pending?: boolean }[]>;
}

class ChaosTab {
  #element: SyncElement | undefined;
  #options: MountOptions | undefined;
  #rng = new Prng(0);
  #n = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #inFlight = new Set<string>();
  #settled: Outcome[] = [];
  #planned: PlannedOperation[] = [];
  #errors: ReportedError[] = [];
  /** Items this tab upserted and saw acknowledged, not yet deleted. */
  readonly #deletable: string[] = [];
  readonly #faults = new BroadcastChannel(FAULT_CHANNEL);

  async mount(options: MountOptions): Promise<void> {
    await import(/* a URL the page server answers */ BUNDLE);
    this.#options = options;
    this.#rng = new Prng(options.seed);
    const element = document.createElement('sync-connection') as SyncElement;
    element.setAttribute('url', options.wsUrl);
    element.setAttribute('db-name', options.dbName);
    element.setAttribute('heartbeat-interval', String(options.heartbeatMs));
    element.setAttribute('backoff-initial', '100');
    element.setAttribute('backoff-max', '2000');
    element.addEventListener('error', (event) => {
      const detail = (event as Event & { detail?: { code?: unknown; message?: unknown } }).detail;
      this.#errors.push({ code: String(detail?.code), message: String(detail?.message ?? '') });
    });
    document.body.append(element);
    this.#element = element;
  }

  /** Queues an operation every `intervalMs` while fewer than `maxInFlight` are unanswered. */
  write(intervalMs: number, maxInFlight: number): void {
    this.stop();
    const tick = (): void => {
      if (this.#inFlight.size < maxInFlight) this.#queueOne();
      this.#timer = setTimeout(tick, intervalMs);
    };
    tick();
  }

  /** Queues `count` operations at once. */
  queue(count: number): void {
    for (let i = 0; i < count; i++) this.#queueOne();
  }

  /** Points the element at another server. */
  setUrl(url: string): void {
    this.#element?.setAttribute('url', url);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Operations queued and settled since the last harvest, and those still unanswered. */
  harvest(): { planned: PlannedOperation[]; settled: Outcome[]; inFlight: string[]; errors: ReportedError[] } {
    const result = { planned: this.#planned, settled: this.#settled, inFlight: [...this.#inFlight], errors: this.#errors };
    this.#planned = [];
    this.#settled = [];
    this.#errors = [];
    return result;
  }

  status(): TabStatus {
    const element = this.#element;
    return {
      status: element?.getAttribute('status') ?? 'none',
      role: element?.getAttribute('role') ?? 'none',
      pending: Number(element?.getAttribute('pending') ?? NaN),
      lastLsn: element?.getAttribute('last-lsn') ?? '',
      inFlight: this.#inFlight.size,
    };
  }

  /** Which of `ids` the shared outbox holds now (read straight from IndexedDB). */
  async outboxHolds(ids: readonly string[]): Promise<string[]> {
    const name = this.#options?.dbName;
    if (!name) return [];
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const request = indexedDB.open(name);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    try {
      // The outbox keeps operations in groups; its `byId` index finds an operation's group.
      const byId = db.transaction('outbox', 'readonly').objectStore('outbox').index('byId');
      const found = await Promise.all(ids.map((id) => new Promise<boolean>((resolve, reject) => {
        const request = byId.count(id);
        request.onsuccess = () => resolve(request.result > 0);
        request.onerror = () => reject(request.error);
      })));
      return ids.filter((_, i) => found[i]);
    } finally {
      db.close();
    }
  }

  /** The entities this tab reads: the store with pending writes on top. */
  async entities(): Promise<{ entityType: string; entityId: string; data: unknown; pending: boolean }[]> {
    const element = this.#element;
    if (!element) return [];
    const rows = [...await element.getEntities('item'), ...await element.getEntities('shared')];
    return rows.map(({ entityType, entityId, data, pending }) => ({ entityType, entityId, data, pending: pending === true }));
  }

  /** Has this database's worker (in whichever tab leads) crash. */
  crashWorker(): void {
    this.#faults.postMessage({ kind: 'crash', db: this.#options?.dbName });
  }

  /** Aborts the next `count` IndexedDB transactions on this database, in every tab and worker. */
  abortTransactions(count: number): void {
    this.#faults.postMessage({ kind: 'abort', db: this.#options?.dbName, count });
  }

  disarm(): void {
    this.#faults.postMessage({ kind: 'disarm', db: this.#options?.dbName });
  }

  #queueOne(): void {
    const element = this.#element;
    const options = this.#options;
    if (!element || !options) return;
    this.#n += 1;
    const n = this.#n;
    const id = `${options.tab}-${n}`;
    const roll = this.#rng.next();
    let planned: PlannedOperation;
    let payload: Record<string, unknown>;
    if (roll < 0.15 && this.#deletable.length > 0) {
      const target = this.#deletable.splice(this.#rng.int(0, this.#deletable.length - 1), 1)[0]!;
      planned = { id, type: 'delete', entityType: 'item', entityId: target, queuedAt: Date.now() };
      payload = { entityType: 'item', entityId: target };
    } else if (roll < 0.45) {
      const entityId = `s${this.#rng.int(0, SHARED_ENTITIES - 1)}`;
      planned = { id, type: 'patch', entityType: 'shared', entityId, queuedAt: Date.now() };
      payload = { entityType: 'shared', entityId, data: { op: id, [options.tab]: n } };
    } else {
      planned = { id, type: 'upsert', entityType: 'item', entityId: id, queuedAt: Date.now() };
      payload = { entityType: 'item', entityId: id, data: { op: id, by: options.tab, n } };
    }
    this.#planned.push(planned);
    this.#inFlight.add(id);
    element.queueOperation({ id, type: planned.type, payload }).then(
      (result) => {
        this.#inFlight.delete(id);
        this.#settled.push(result.lsn === undefined ? { id, state: 'acknowledged' } : { id, state: 'acknowledged', lsn: result.lsn });
        if (planned.type === 'upsert') this.#deletable.push(id);
      },
      (error: unknown) => {
        this.#inFlight.delete(id);
        const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
        this.#settled.push({ id, state: 'rejected', code: String(code ?? 'none'), message: String(message ?? error) });
      },
    );
  }
}

declare global {
  interface Window {
    chaos: ChaosTab;
  }
}

window.chaos = new ChaosTab();
