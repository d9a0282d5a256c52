/**
 * The JSON answers of the reference server's HTTP API, shared by the server that sends them and
 * the code that reads them. Types only.
 */
import type { LSN } from './lsn.ts';

/** `GET /api/stats`: the store's counts and the server's own counters. */
export interface ServerStats {
  /** The log's head. */
  lsn: LSN;
  records: number;
  changes: number;
  entities: number;
  /** Distinct operation ids applied, over the whole log. */
  operationsApplied: number;
  /** `operation` frames received since the process started, duplicates included. */
  operationFramesReceived: number;
  /** Sockets open now. */
  clients: number;
}

/** `GET /api/entities`: every entity as of one LSN. */
export interface EntitiesAnswer {
  lsn: LSN;
  entities: { entityType: string; entityId: string; data: unknown }[];
}

/** `POST /api/changes`: the LSN the appended changes got. */
export interface ChangesAccepted {
  lsn: LSN;
}
