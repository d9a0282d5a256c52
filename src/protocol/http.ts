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
  /** Clients dropped since the process started for not keeping up (unread frames, a stall, the server's memory). */
  clientsDropped: number;
  /** Bytes held now by frames waiting to be sent and request bodies being read. */
  bytesHeld: number;
}

/**
 * `GET /api/entities[?limit=N][&after=CURSOR]`: one page of the entities, read at `lsn`. `next`,
 * when present, is the `after` of the following page.
 */
export interface EntitiesAnswer {
  lsn: LSN;
  entities: { entityType: string; entityId: string; data: unknown }[];
  next?: string;
}

/** `POST /api/changes`: the LSN the appended changes got. */
export interface ChangesAccepted {
  lsn: LSN;
}
