import type { Edit } from './edit.ts';
import type { Identity } from './identity.ts';
import type { ScopedEntity } from './sync-store.ts';

/** What an operation handler is given besides the payload. */
export interface OperationContext {
  /** Who sent it. */
  identity: Identity;
  /** The server's clock, for server-computed fields. */
  now: number;
  /** An entity's current value and scope (undefined: it does not exist), as the store has it now. */
  entity(entityType: string, entityId: string): Promise<ScopedEntity | undefined>;
}

/**
 * An app-defined operation type: checks the payload and returns the changes it makes (whole values,
 * deletes, or `{ type: 'patch', entityType, entityId, patch }` merge patches), or throws to refuse
 * it: the error's message goes to the client in a final `operation_error`. The changes are stored
 * as one record, once per operation id, like `upsert`, `patch` and `delete`.
 */
export type OperationHandler = (payload: unknown, context: OperationContext) => readonly unknown[] | Promise<readonly unknown[]>;

/** One change an operation would make, as `authorize` sees it. */
export interface WriteRequest {
  /** The operation's id and type as the client sent them (`http` for `POST /api/changes`). */
  id: string;
  type: string;
  payload: unknown;
  /** The change to one entity, as asked for (a patch is not merged yet). */
  change: Edit;
}

/**
 * Decides whether `identity` may make `request`'s change to an entity whose current value and
 * scope are `current` (undefined: it does not exist): `true`, or the reason it may not, which the
 * client gets in a final `operation_error`. Called once per change; may be async. Without it, an
 * identity may write an entity only when its scope before and after the write is one of its
 * scopes, checked by the store in its write order.
 */
export type Authorize = (
  identity: Identity,
  request: WriteRequest,
  current: ScopedEntity | undefined,
) => true | string | Promise<true | string>;
