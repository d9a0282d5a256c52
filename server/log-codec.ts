import { isRecord, parseChanges, type Change } from '../src/protocol/change.ts';

/** What one line of the log file holds. */
export interface LogEntry {
  changes: Change[];
  operationId?: string;
}

/** One JSON line, newline included. */
export function encodeEntry(changes: readonly Change[], operationId?: string): Buffer {
  const entry = operationId === undefined ? { changes } : { op: operationId, changes };
  return Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
}

/** Parses one line of the log; returns the reason when it is not a valid entry. */
export function decodeEntry(text: string): LogEntry | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isRecord(value) || !Array.isArray(value.changes)) return 'no "changes" array';
  const { changes, invalid } = parseChanges(value.changes);
  if (invalid.length > 0) return `invalid change: ${invalid[0]!.reason}`;
  if (value.op === undefined) return { changes };
  if (typeof value.op !== 'string' || value.op.length === 0) return 'invalid "op"';
  return { changes, operationId: value.op };
}
