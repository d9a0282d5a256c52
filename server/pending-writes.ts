import type { Change } from '../src/protocol/change.ts';
import { entityKey } from './edit.ts';
import type { ChangeScope } from './scopes.ts';

/** What the appends not yet durable leave an entity as: its value (undefined: deleted) and scope. */
export interface PendingEntity {
  value: unknown;
  scope: string | undefined;
}

/**
 * Entities written by appends not yet durable: their value and scope once those are, and how
 * many such appends there are, so that the next append reads what the ones before it wrote.
 */
export class PendingWrites {
  readonly #entities = new Map<string, PendingEntity & { appends: number }>();

  get(key: string): PendingEntity | undefined {
    return this.#entities.get(key);
  }

  /** Holds what an append of `changes` (with their `scopes`) will leave until it is durable. */
  hold(changes: readonly Change[], scopes: readonly ChangeScope[]): void {
    for (const [i, change] of changes.entries()) {
      const key = entityKey(change.entityType, change.entityId);
      const appends = (this.#entities.get(key)?.appends ?? 0) + 1;
      const deleted = change.type === 'delete';
      this.#entities.set(key, { value: deleted ? undefined : change.data, scope: deleted ? undefined : scopes[i]!.scope, appends });
    }
  }

  /** The append of `changes` is durable: the store's index says the rest. */
  release(changes: readonly Change[]): void {
    for (const change of changes) {
      const key = entityKey(change.entityType, change.entityId);
      const pending = this.#entities.get(key);
      if (pending && --pending.appends === 0) this.#entities.delete(key);
    }
  }
}
