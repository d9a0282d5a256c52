import { expect } from '@open-wc/testing';
import { LocalStore } from '../../src/db/local-store.ts';
import { deleteDatabase, uniqueDbName } from '../helpers/e2e.ts';

/*
 * Found by the chaos run (IndexedDB transactions aborted in a tab): a read whose transaction
 * aborted rejected to its caller, and the transaction's own `done` promise, which nobody awaited,
 * rejected too, as an unhandled rejection on the page ("Uncaught (in promise) AbortError").
 */
describe('the local store when IndexedDB aborts its transactions', () => {
  let name: string;
  let store: LocalStore;
  const original = IDBDatabase.prototype.transaction;
  const unhandled: unknown[] = [];
  const listen = (event: PromiseRejectionEvent): void => {
    unhandled.push(event.reason);
    event.preventDefault();
  };

  beforeEach(async () => {
    name = uniqueDbName();
    store = await LocalStore.open(name);
    unhandled.length = 0;
    window.addEventListener('unhandledrejection', listen);
    // Every transaction aborts once its first requests are made, as a failing disk would end it.
    IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>) {
      const tx = original.apply(this, args);
      queueMicrotask(() => tx.abort());
      return tx;
    } as IDBDatabase['transaction'];
  });

  afterEach(async () => {
    IDBDatabase.prototype.transaction = original;
    window.removeEventListener('unhandledrejection', listen);
    store.close();
    await deleteDatabase(name);
  });

  const reads: Record<string, (store: LocalStore) => Promise<unknown>> = {
    entity: (s) => s.entity('note', '1'),
    entities: (s) => s.entities('note'),
    operations: (s) => s.operations(),
    countOperations: (s) => s.countOperations(),
    clearOperations: (s) => s.clearOperations(new Set(['kept'])),
  };

  for (const [method, read] of Object.entries(reads)) {
    it(`${method} rejects with the abort, and nothing else on the page does`, async () => {
      const outcome = await read(store).then(() => 'resolved', (error: unknown) => (error as Error).name);
      expect(outcome).to.equal('AbortError');
      // The page reports unhandled rejections in a task after the microtasks: two turns of the loop.
      await new Promise((resolve) => setTimeout(resolve, 0));
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(unhandled.map(String)).to.deep.equal([]);
    });
  }
});
