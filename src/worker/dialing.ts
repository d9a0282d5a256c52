/**
 * The rules of dialing (docs/protocol.md "Connecting", "Close codes"): the URL with the resume
 * point, and the close codes that end the retries. When to dial again is retry-schedule.ts.
 */
import type { LSN } from '../protocol/lsn.ts';

/** Close codes a server uses to say "do not retry". */
export function isFatalCloseCode(code: number): boolean {
  return code >= 4000 && code <= 4099;
}

/**
 * The URL to dial: `url` with `clientId` and `lastLSN` set (other parameters kept), or
 * `undefined` when `url` is not an absolute ws: or wss: URL.
 */
export function buildEndpoint(url: string, clientId: string, lastLSN: LSN): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') return undefined;
  parsed.hash = '';
  parsed.searchParams.set('clientId', clientId);
  parsed.searchParams.set('lastLSN', lastLSN);
  return parsed.href;
}

/** The code and reason of a socket's `close` event (1006 when it has none). */
export function closeDetails(event: Event): { code: number; reason: string } {
  const { code, reason } = event as Partial<CloseEvent>;
  return { code: typeof code === 'number' ? code : 1006, reason: typeof reason === 'string' ? reason : '' };
}
