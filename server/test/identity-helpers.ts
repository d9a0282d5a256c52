import { SignJWT } from 'jose';
import { isRecord } from '../../src/protocol/change.ts';
import type { ServerMessage } from '../../src/protocol/wire.ts';
import { jwtAuthenticator } from '../jwt-auth.ts';
import type { ScopeOf } from '../scopes.ts';
import type { SyncServer, SyncServerOptions } from '../sync-server.ts';
import { TestClient, wsUrl } from './helpers.ts';

export const SECRET = 'a test secret of at least thirty-two bytes';

/** Signs a token for `sub` with `scopes`; `claims` and `expires` override the defaults. */
export async function tokenFor(sub: string, scopes: string[], { secret = SECRET, expires = '1h', claims = {} }: { secret?: string; expires?: string | number; claims?: Record<string, unknown> } = {}): Promise<string> {
  return new SignJWT({ scopes, ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(expires)
    .sign(new TextEncoder().encode(secret));
}

/** A note's scope is its `scope` member (`shared` without one); the scope `boom` makes scopeOf throw. */
export const scopeOf: ScopeOf = ({ data }) => {
  const scope = isRecord(data) && typeof data.scope === 'string' ? data.scope : 'shared';
  if (scope === 'boom') throw new Error('scopeOf cannot place this note');
  return scope;
};

/** The options every scoped server of these tests starts with. */
export const scopedOptions: SyncServerOptions = {
  authenticate: jwtAuthenticator({ secret: SECRET }),
  scopeOf,
  resumeAdvanceInterval: 50,
};

export function note(id: string, entityId: string, data: unknown, type = 'upsert') {
  return { type: 'operation', operation: { id, type, payload: { entityType: 'note', entityId, data } } };
}

export function drop(id: string, entityId: string) {
  return { type: 'operation', operation: { id, type: 'delete', payload: { entityType: 'note', entityId } } };
}

/** A client synced as the holder of `token`, from `lastLSN`; `frames` is what its catch-up brought. */
export async function syncedAs(t: { after(fn: () => void): void }, server: SyncServer, token: string | undefined, lastLSN = '0/0', clientId = 'test-client'): Promise<{ client: TestClient; frames: ServerMessage[] }> {
  const client = await TestClient.open(wsUrl(server), t);
  client.send({ type: 'sync', clientId, lastLSN, ...(token === undefined ? {} : { token }) });
  const frames = await client.until('sync_complete');
  return { client, frames };
}

/** `entityType/entityId type` of every change in `frames`, in order. */
export function seen(frames: readonly ServerMessage[]): string[] {
  return frames.flatMap((frame) => (frame.type === 'changes' ? frame.changes.map((change) => `${change.entityId} ${change.type}`) : []));
}

/** The answer to operation `id`: reads frames until it comes, returning it and the frames before it. */
export async function answerTo(client: TestClient, id: string): Promise<{ answer: ServerMessage; before: ServerMessage[] }> {
  const before: ServerMessage[] = [];
  for (;;) {
    const frame = await client.next();
    if ((frame.type === 'operation_complete' || frame.type === 'operation_error') && frame.id === id) return { answer: frame, before };
    before.push(frame);
  }
}

/** The next `changes` frame, skipping everything else. */
export async function nextChanges(client: TestClient): Promise<Extract<ServerMessage, { type: 'changes' }>> {
  for (;;) {
    const frame = await client.next();
    if (frame.type === 'changes') return frame;
  }
}

/** The next `changes` frame that holds changes (empty batches only move the resume point). */
export async function nextVisible(client: TestClient): Promise<Extract<ServerMessage, { type: 'changes' }>> {
  for (;;) {
    const frame = await nextChanges(client);
    if (frame.changes.length > 0) return frame;
  }
}
