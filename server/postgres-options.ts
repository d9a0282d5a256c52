import type { ScopeOf } from './scopes.ts';

export interface PostgresStoreOptions {
  /** Names each entity's scope when the stamper resolves a write; every instance must use the same. */
  scopeOf?: ScopeOf;
  /** Ms between the fallback rounds: read new records, stamp, try to become the stamper. Default 1000. */
  pollInterval?: number;
  /** Ms between attempts to reach the database while it is unavailable. Default 500. */
  retryInterval?: number;
  /** Connections for writes and reads, besides the one session each instance keeps. Default 8. */
  poolSize?: number;
  /**
   * Ms a query may wait for its answer before the database counts as unreachable (a partition
   * sends no error). Default 30000; the server cancels a pooled statement after 5/6 of it.
   */
  queryTimeout?: number;
  /** Ms to connect, and to wait for a free pooled connection. Default 5000. */
  connectionTimeout?: number;
  /**
   * Ms after which the server ends this instance's session if it stays idle (the instance stopped
   * polling: its host is gone), releasing the stamper lock. Default max(20000, 5 * pollInterval).
   */
  idleSessionTimeout?: number;
  /** Most decoded rows (three per write) one stamp pass reads. Default 5000. */
  stampLimit?: number;
  /** How long compaction keeps deletes and moves out of a scope (ms); default 30 days. */
  tombstoneRetentionMs?: number;
  /** Tests: runs after a stamp committed and before the slot is advanced. */
  afterStamp?: () => void | Promise<void>;
}
