/** What a chaos tab's page and the harness tell each other (plain data, no DOM). */

export interface MountOptions {
  wsUrl: string;
  dbName: string;
  /** This tab's name, unique in the run; the prefix of its operation ids. */
  tab: string;
  seed: number;
  heartbeatMs: number;
}

export type Outcome =
  | { id: string; state: 'acknowledged'; lsn?: string }
  | { id: string; state: 'rejected'; code: string; message: string };

export interface PlannedOperation {
  id: string;
  type: 'upsert' | 'patch' | 'delete';
  entityType: string;
  entityId: string;
  /** `Date.now()` when it was queued. */
  queuedAt: number;
}

export interface TabStatus {
  status: string;
  role: string;
  pending: number;
  lastLsn: string;
  inFlight: number;
}

export interface ReportedError {
  code: string;
  message: string;
}
