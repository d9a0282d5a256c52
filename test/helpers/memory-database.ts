import type { Database, DatabaseTransaction } from '../../src/client/database.ts';

export interface RecordedWrite {
  op: 'upsert' | 'delete';
  entityType: string;
  entityId: string;
  data?: unknown;
  timestamp: number;
}

/**
 * An app's own store, in memory: each transaction writes to a copy that replaces the entities
 * only when the work resolves. `failWhen` makes a transaction fail (after its writes, before the
 * commit), as a real database refusing a write would.
 */
export class MemoryDatabase implements Database {
  entities = new Map<string, { data: unknown; timestamp: number }>();
  /** The writes of each committed transaction, in commit order. */
  readonly committed: RecordedWrite[][] = [];
  readonly failed: RecordedWrite[][] = [];
  failWhen: ((writes: RecordedWrite[]) => string | undefined) | undefined;

  async transaction<T>(work: (tx: DatabaseTransaction) => Promise<T>): Promise<T> {
    const draft = new Map(this.entities);
    const writes: RecordedWrite[] = [];
    const tx: DatabaseTransaction = {
      upsertEntity: async (entityType, entityId, data, timestamp) => {
        writes.push({ op: 'upsert', entityType, entityId, data, timestamp });
        draft.set(`${entityType}/${entityId}`, { data, timestamp });
      },
      deleteEntity: async (entityType, entityId, timestamp) => {
        writes.push({ op: 'delete', entityType, entityId, timestamp });
        draft.delete(`${entityType}/${entityId}`);
      },
    };
    const result = await work(tx);
    const refusal = this.failWhen?.(writes);
    if (refusal) {
      this.failed.push(writes);
      throw new Error(refusal);
    }
    this.entities = draft;
    this.committed.push(writes);
    return result;
  }

  get(entityType: string, entityId: string): unknown {
    return this.entities.get(`${entityType}/${entityId}`)?.data;
  }
}
