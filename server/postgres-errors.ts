/** SQLSTATE classes that mean "the database cannot be reached or is going away", not "bad query". */
const UNAVAILABLE_STATES = /^(08|53|57P|58)/;
// ENOENT: a unix socket that is not there, the server is not running (as ECONNREFUSED over TCP).
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN', 'ENETUNREACH', 'ENOENT']);
// 'Query read timeout': the pg client's query_timeout, the one sign of a partition (no error ever
// comes back). Not 'timeout exceeded when trying to connect': see isPoolBusy.
const UNAVAILABLE_MESSAGES = /Connection terminated|connection timeout|not queryable|Connection ended|Query read timeout/i;

/** True when `error` says the database is unreachable (for now), rather than that a query was wrong. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_STATES.test(code) || UNAVAILABLE_CODES.has(code))) return true;
  return UNAVAILABLE_MESSAGES.test(error.message);
}

/**
 * True when `error` is pg-pool's "timeout exceeded when trying to connect": raised only when a
 * query waited too long in the pool's queue for a free connection (all were busy), never for a
 * connection attempt that failed (that one is "Connection terminated due to connection timeout"
 * or the socket's error). A busy pool is load, not an outage.
 */
export function isPoolBusy(error: unknown): boolean {
  return error instanceof Error && /timeout exceeded when trying to connect/i.test(error.message);
}

/** SQLSTATE 57014: the statement was cancelled (statement_timeout): it did nothing. */
export function isCancelled(error: unknown): boolean {
  return error instanceof Error && (error as { code?: unknown }).code === '57014';
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

export function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  if (error instanceof Error) return error.message || (error as { code?: string }).code || error.name;
  return String(error);
}

/** The replication slot was dropped (42704) or invalidated (55000) under the stamper. */
export function isSlotGone(error: unknown): boolean {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return (code === '42704' || code === '55000') && error instanceof Error && /replication slot/i.test(error.message);
}

/** The replication slot is in use by another connection (55006): a stamper that left has not let go yet. */
export function isSlotBusy(error: unknown): boolean {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return code === '55006' && error instanceof Error && /replication slot/i.test(error.message);
}

/** SQLSTATE 22 (data exception) and 54 (program limit exceeded): this value can never be stored. */
export function isRefusal(error: unknown): boolean {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^(22|54)/.test(code);
}
