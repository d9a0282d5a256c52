import { formatLSN, parseLSN } from '../src/protocol/lsn.ts';
import { isRecord } from '../src/protocol/change.ts';
import type { LogRow } from './postgres-reads.ts';

/**
 * What the stamper's NOTIFY says: the log's new head and, when they fit in a notification, the
 * rows it added right after `after` (the head before them), so that a server already at `after`
 * takes them from the notification instead of reading them back. Otherwise, or from a stamper
 * that sends only the head, a server reads the log as before.
 */
export interface Announcement {
  head: bigint;
  added?: { after: bigint; rows: LogRow[] };
}

/** PostgreSQL refuses a payload of 8,000 bytes or more. */
const MAX_PAYLOAD_BYTES = 7_900;

export function encodeAnnouncement(head: bigint, added?: { after: bigint; rows: readonly LogRow[] }): string {
  const lsn = formatLSN(head);
  if (!added) return lsn;
  const payload = JSON.stringify({ head: lsn, after: formatLSN(added.after), rows: added.rows });
  return Buffer.byteLength(payload) < MAX_PAYLOAD_BYTES ? payload : lsn;
}

/** Undefined for a payload that is neither (nothing to take from it: read the log). */
export function decodeAnnouncement(payload: string | undefined): Announcement | undefined {
  if (payload === undefined) return undefined;
  if (!payload.startsWith('{')) {
    const head = parseLSN(payload);
    return head === undefined ? undefined : { head };
  }
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (!isRecord(value) || typeof value.head !== 'string' || typeof value.after !== 'string' || !Array.isArray(value.rows)) return undefined;
  const head = parseLSN(value.head);
  const after = parseLSN(value.after);
  if (head === undefined || after === undefined || !value.rows.every(isLogRow)) return undefined;
  return { head, added: { after, rows: value.rows } };
}

function isLogRow(value: unknown): value is LogRow {
  return isRecord(value) && typeof value.lsn === 'string' && typeof value.write_id === 'string'
    && (value.operation_id === null || typeof value.operation_id === 'string')
    && (value.refused === null || typeof value.refused === 'string') && 'changes' in value && 'scopes' in value;
}
