/**
 * Faults injected from inside the browser, installed before any other script of the page and
 * prepended to the sync worker's script, so that it runs in both realms. It listens on a
 * BroadcastChannel of the origin for:
 * - `abort` `{ db, count }`: the next `count` IndexedDB transactions on database `db`, in this
 *   realm, abort right after their first requests are made (as a failing disk or a quota error
 *   would end them);
 * - `disarm` `{ db }`: no more aborts on `db`;
 * - `crash` `{ db }`: a worker that opened `db` throws an uncaught error, which its page sees as
 *   the worker dying.
 */

export const FAULT_CHANNEL = 'sync-chaos-faults';

type FaultMessage =
  | { kind: 'abort'; db: string; count: number }
  | { kind: 'disarm'; db: string }
  | { kind: 'crash'; db: string };

function parseFault(data: unknown): FaultMessage | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { kind, db, count } = data as Record<string, unknown>;
  if (typeof db !== 'string') return undefined;
  if (kind === 'abort' && typeof count === 'number') return { kind, db, count };
  if (kind === 'disarm' || kind === 'crash') return { kind, db };
  return undefined;
}

export function installFaultInjector(scope: typeof globalThis): void {
  const marker = Symbol.for('sync-chaos-injector');
  const holder = scope as unknown as Record<symbol, unknown>;
  if (holder[marker]) return;
  holder[marker] = true;

  const inWorker = typeof (scope as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';
  const armed = new Map<string, number>();
  const opened = new Set<string>();

  const open = IDBFactory.prototype.open;
  IDBFactory.prototype.open = function (this: IDBFactory, name: string, version?: number) {
    opened.add(name);
    return version === undefined ? open.call(this, name) : open.call(this, name, version);
  };

  const transaction = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>) {
    const tx = transaction.apply(this, args);
    const left = armed.get(this.name) ?? 0;
    if (left > 0) {
      armed.set(this.name, left - 1);
      queueMicrotask(() => {
        try {
          tx.abort();
        } catch {
          // it finished already
        }
      });
    }
    return tx;
  } as IDBDatabase['transaction'];

  const channel = new BroadcastChannel(FAULT_CHANNEL);
  channel.onmessage = (event: MessageEvent) => {
    const fault = parseFault(event.data);
    if (!fault) return;
    if (fault.kind === 'abort') armed.set(fault.db, (armed.get(fault.db) ?? 0) + fault.count);
    else if (fault.kind === 'disarm') armed.delete(fault.db);
    else if (inWorker && opened.has(fault.db)) {
      setTimeout(() => {
        throw new Error('chaos: the sync worker crashed');
      });
    }
  };
}
