import { SyncError } from '../protocol/errors.ts';

/**
 * Turns the element's `url` into a WebSocket endpoint: relative and http(s) URLs are resolved
 * against `base` and mapped to ws(s); ws(s) URLs pass; anything else is refused.
 */
export function resolveSyncUrl(url: string, base: string): string {
  const text = url.trim();
  if (text === '') throw new SyncError('invalid_url', 'The sync url is empty');
  let parsed: URL;
  try {
    parsed = new URL(text, base);
  } catch (cause) {
    throw new SyncError('invalid_url', `The sync url ${JSON.stringify(url)} is not a URL`, { cause });
  }
  switch (parsed.protocol) {
    case 'http:':
      parsed.protocol = 'ws:';
      break;
    case 'https:':
      parsed.protocol = 'wss:';
      break;
    case 'ws:':
    case 'wss:':
      break;
    default:
      throw new SyncError(
        'invalid_url',
        `The sync url must be relative, http(s) or ws(s); ${JSON.stringify(parsed.protocol)} is refused`,
      );
  }
  parsed.hash = '';
  return parsed.href;
}
