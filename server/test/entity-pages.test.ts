/**
 * `GET /api/entities` in pages (`limit`, `after`, `next`) on both stores, and what it refuses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SyncServer } from '../sync-server.ts';
import { allEntities, getJson, postChanges, startServer, tempDir, update } from './helpers.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres-cluster.ts';
import { startInstance } from './postgres-helpers.ts';

const BOUNDED = { timeout: 60_000 };

let cluster: PostgresCluster | undefined;
before(async () => {
  cluster = await startPostgresCluster();
});
after(() => cluster?.destroy());

const STORES: Record<string, (t: { after(fn: () => Promise<void>): void }) => Promise<SyncServer>> = {
  'embedded log': async (t) => startServer(t, { dataDir: await tempDir(t) }),
  PostgreSQL: async (t) => startInstance(t, await cluster!.createDatabase()),
};

for (const [kind, start] of Object.entries(STORES)) {
  describe(`with the ${kind}`, () => {
    test('pages follow one another through `next` and together hold every entity once', BOUNDED, async (t) => {
      const server = await start(t);
      // One record of seven changes (a page may end inside it), then single ones, an update and a delete.
      assert.equal((await postChanges(server.url, Array.from({ length: 7 }, (_, i) => update('task', `multi-${i}`, i)))).status, 200);
      for (let i = 0; i < 20; i += 1) await postChanges(server.url, [update('task', `single-${i}`, i)]);
      await postChanges(server.url, [update('task', 'multi-3', 'changed'), { type: 'delete', entityType: 'task', entityId: 'single-5' }]);
      const expected = new Map<string, unknown>([
        ...Array.from({ length: 7 }, (_, i): [string, unknown] => [`multi-${i}`, i === 3 ? 'changed' : i]),
        ...Array.from({ length: 20 }, (_, i): [string, unknown] => [`single-${i}`, i]),
      ]);
      expected.delete('single-5');

      const first = await getJson(`${server.url}/api/entities?limit=3`);
      assert.equal((first.entities as unknown[]).length, 3, 'a page holds `limit` entities');
      assert.equal(typeof first.next, 'string', 'and says where the next one starts');
      assert.equal(typeof first.lsn, 'string');
      const paged = await allEntities(server.url, 3);
      assert.equal(paged.length, expected.size, 'no entity twice, none missing');
      assert.deepEqual(new Map(paged.map((entity) => [entity.entityId, entity.data])), expected);
      const whole = await getJson(`${server.url}/api/entities`);
      assert.equal(whole.next, undefined, 'a small store fits in the default page');
      assert.equal((whole.entities as unknown[]).length, expected.size);
    });

    test('a bad limit or cursor is a 400 that says why', BOUNDED, async (t) => {
      const server = await start(t);
      await postChanges(server.url, [update('task', 'a', 1)]);
      for (const query of ['limit=0', 'limit=10001', 'limit=abc', 'limit=1.5', 'after=', 'after=nonsense', `after=${'x'.repeat(5000)}`]) {
        const response = await fetch(`${server.url}/api/entities?${query}`);
        assert.equal(response.status, 400, `${query.slice(0, 30)} is refused`);
        assert.match(String(((await response.json()) as { error: unknown }).error), /limit|after|cursor/, 'saying why');
      }
    });
  });
}
