/**
 * A retryable operation_error must not reorder one client's writes: once a connection deferred an
 * operation, the operations after it are deferred too until it is sent again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Change } from '../../src/protocol/change.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import { DEFERRED_EXPIRY_MS } from '../operation-writer.ts';
import { FileSyncStore } from '../store.ts';
import { StoreUnavailableError, type AppendResult, type SyncStore } from '../sync-store.ts';
import { startServer, tempDir, TestClient, wsUrl } from './helpers.ts';

const BOUNDED = { timeout: 20_000 };

/** The embedded store, except that appends of the ids in `unavailableFor` fail as during an outage. */
function flakyStore(inner: SyncStore, unavailableFor: Set<string>): SyncStore {
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'append') {
        return (changes: readonly Change[], operationId?: string): Promise<AppendResult> => {
          if (operationId !== undefined && unavailableFor.delete(operationId)) {
            return Promise.reject(new StoreUnavailableError('the database is unavailable (test)'));
          }
          return target.append(changes, operationId);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function operation(id: string, type: 'upsert' | 'delete') {
  const payload = type === 'upsert' ? { entityType: 'task', entityId: 'x', data: { id } } : { entityType: 'task', entityId: 'x' };
  return { type: 'operation', operation: { id, type, payload } };
}

async function answers(client: TestClient, count: number): Promise<Map<string, ServerMessage>> {
  const byId = new Map<string, ServerMessage>();
  while (byId.size < count) {
    const frame = await client.next(5000);
    if (frame.type === 'operation_complete' || frame.type === 'operation_error') byId.set(frame.id, frame);
  }
  return byId;
}

test('after a deferred operation, later ones on the connection are deferred too until it comes back: an upsert then a delete stay in order', BOUNDED, async (t) => {
  const { store: inner } = await FileSyncStore.open(await tempDir(t));
  t.after(() => inner.close());
  const failing = new Set(['upsert-1']);
  const server = await startServer(t, { store: flakyStore(inner, failing) });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  // The outage hits the upsert; the database is back for the delete sent right after it.
  client.send(operation('upsert-1', 'upsert'));
  client.send(operation('delete-2', 'delete'));
  const first = await answers(client, 2);
  for (const id of ['upsert-1', 'delete-2']) {
    const answer = first.get(id);
    assert.ok(answer?.type === 'operation_error' && answer.retryable === true, `${id} deferred (${JSON.stringify(answer)})`);
  }
  assert.equal((await inner.stats()).records, 0, 'the delete was not applied ahead of the upsert');
  // The client sends them again, in order.
  client.send(operation('upsert-1', 'upsert'));
  client.send(operation('delete-2', 'delete'));
  const second = await answers(client, 2);
  assert.deepEqual([...second.values()].map((frame) => frame.type), ['operation_complete', 'operation_complete'], 'both applied now');
  const snapshot = await inner.entities({ limit: 100 });
  assert.deepEqual(snapshot.entities, [], 'the delete came last: the entity is gone');
});

test('a deferred operation the client never sends again stops holding the others back after a while', BOUNDED, async (t) => {
  const { store: inner } = await FileSyncStore.open(await tempDir(t));
  t.after(() => inner.close());
  let clock = 1_000_000;
  const server = await startServer(t, { store: flakyStore(inner, new Set(['dropped'])), now: () => clock });
  const client = await TestClient.open(wsUrl(server), t);
  await client.sync('0/0');
  client.send(operation('dropped', 'upsert'));
  client.send(operation('next', 'upsert'));
  const first = await answers(client, 2);
  assert.ok(first.get('next')?.type === 'operation_error', 'held back behind the deferred one');
  clock += DEFERRED_EXPIRY_MS + 1;
  client.send(operation('next', 'upsert'));
  const second = await answers(client, 1);
  assert.equal(second.get('next')?.type, 'operation_complete', 'applied once the deferred one expired');
});
