/** Compaction scenarios that run against either store, through a real server. */
import assert from 'node:assert/strict';
import { compareLSN } from '../../src/protocol/lsn.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import type { SyncServer, SyncServerOptions } from '../sync-server.ts';
import { HOUR } from './compaction-helpers.ts';
import { allEntities, changeFrames, startServer, TestClient, wsUrl } from './helpers.ts';
import { note, scopedOptions, seen, syncedAs, tokenFor } from './identity-helpers.ts';

/** A client's entities after applying `frames` on top of `held` (each batch skipped if not past its resume point). */
export function applyFrames(frames: readonly ServerMessage[], held = new Map<string, unknown>(), from = '0/0'): { held: Map<string, unknown>; lsn: string } {
  let lsn = from;
  for (const frame of changeFrames(frames)) {
    assert.ok(compareLSN(frame.lsn, lsn) > 0, `batches come in increasing LSN order, none twice (${frame.lsn} after ${lsn})`);
    lsn = frame.lsn;
    for (const change of frame.changes) {
      const key = `${change.entityType}/${change.entityId}`;
      if (change.type === 'update') held.set(key, change.data);
      else held.delete(key);
    }
  }
  return { held, lsn };
}

export async function serverEntities(server: SyncServer): Promise<Map<string, unknown>> {
  return new Map((await allEntities(server.url)).map((entity) => [`${entity.entityType}/${entity.entityId}`, entity.data]));
}

/**
 * A note moves from alice's scope to bob's and changes there: after compaction alice's snapshot
 * never holds it, a reader of alice's scope that held it gets its delete while the move is kept,
 * and is reset once the move is older than the retention.
 */
export async function scopesAcrossCompaction(t: { after(fn: () => Promise<void> | void): void }, store: Pick<SyncServerOptions, 'dataDir' | 'storeUrl'>): Promise<void> {
  let clock = Date.now();
  const server = await startServer(t, { ...scopedOptions, ...store, tombstoneRetentionMs: HOUR, now: () => clock });
  const writer = await tokenFor('writer', ['*']);
  const alice = await tokenFor('alice', ['alice']);
  const bob = await tokenFor('bob', ['bob']);
  const { client } = await syncedAs(t, server, writer, '0/0', 'writer');
  const write = async (message: ReturnType<typeof note>) => {
    client.send(message);
    for (;;) {
      const frame = await client.next();
      if (frame.type === 'operation_complete' && frame.id === message.operation.id) return frame.lsn!;
    }
  };
  await write(note('n1', 'moved', { scope: 'alice', v: 1 }));
  const aliceHad = await write(note('n2', 'stays', { scope: 'alice', v: 1 }));
  clock += 30 * 60_000;
  await write(note('n3', 'moved', { scope: 'bob', v: 2 }));
  await write(note('n4', 'moved', { scope: 'bob', v: 3 }));
  await write(note('n5', 'bobs', { scope: 'bob', v: 1 }));
  const report = await server.compact();
  assert.equal(report.removalsDropped, 0, 'the move is younger than the retention');

  const aliceFresh = await syncedAs(t, server, alice, '0/0', 'alice-fresh');
  assert.ok(!seen(aliceFresh.frames).some((item) => item.endsWith('update') && item.startsWith('moved')), 'alice never gets bob\'s note');
  assert.ok(!seen(aliceFresh.frames).some((item) => item.startsWith('bobs')));
  const aliceOld = await syncedAs(t, server, alice, aliceHad, 'alice-old');
  assert.deepEqual(seen(aliceOld.frames), ['moved delete'], 'the move out reaches a reader that held the note');
  const bobFresh = await syncedAs(t, server, bob, '0/0', 'bob-fresh');
  assert.deepEqual(applyFrames(bobFresh.frames).held, new Map([['note/moved', { scope: 'bob', v: 3 }], ['note/bobs', { scope: 'bob', v: 1 }]]));

  // Once the move is older than the retention it goes: alice's old resume point is then reset.
  clock += 2 * HOUR;
  assert.equal((await server.compact()).removalsDropped, 1);
  const aliceLate = await TestClient.open(wsUrl(server), t);
  aliceLate.send({ type: 'sync', clientId: 'alice-old', lastLSN: aliceHad, token: alice });
  const frames = await aliceLate.until('reset');
  assert.deepEqual(seen(frames), []);
  aliceLate.send({ type: 'sync', clientId: 'alice-old', lastLSN: '0/0', token: alice });
  const snapshot = await aliceLate.until('sync_complete');
  assert.deepEqual(applyFrames(snapshot).held, new Map([['note/stays', { scope: 'alice', v: 1 }]]));
}
