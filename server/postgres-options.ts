import type { ScopeOf } from './scopes.ts';

export interface PostgresStoreOptions {
  /** Names each entity's scope when the stamper resolves a write; every instance must use the same. */
  scopeOf?: ScopeOf;
  /** Ms between the fallback rounds: read new records, try to become the stamper. Default 1000. */
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
   * polling: its host is gone), releasing the stamper lock; and after which a silent replication
   * stream counts as lost, at both ends. Default max(20000, 5 * pollInterval).
   */
  idleSessionTimeout?: number;
  /** Most writes one stamp takes (and about 16 MiB of them); reading the slot pauses while twice as many wait. Default 2000. */
  stampLimit?: number;
  /** How long compaction keeps deletes and moves out of a scope (ms); default 30 days. */
  tombstoneRetentionMs?: number;
  /** Tests: runs after a stamp committed and before the slot is told. */
  afterStamp?: () => void | Promise<void>;
}
