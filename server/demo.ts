import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { isRecord } from '../src/protocol/change.ts';
import type { ScopeOf } from './scopes.ts';

/** The demo's users: each reads and writes the shared notes and its own private ones. */
export const DEMO_USERS = ['alice', 'bob'] as const;

/** A note is private to its `owner` when `private` is true; everything else is shared. */
export const demoScopeOf: ScopeOf = ({ data }) =>
  isRecord(data) && data.private === true && typeof data.owner === 'string' ? `private:${data.owner}` : 'shared';

/** The scopes of a demo user. */
export function demoScopes(user: string): string[] {
  return ['shared', `private:${user}`];
}

/** A development secret: random for each start, unless one is given. */
export function demoSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** One token per demo user, signed with `secret`, valid for a day. */
export async function demoTokens(secret: string): Promise<Record<string, string>> {
  const key = new TextEncoder().encode(secret);
  const tokens: Record<string, string> = {};
  for (const user of DEMO_USERS) {
    tokens[user] = await new SignJWT({ scopes: demoScopes(user) }).setProtectedHeader({ alg: 'HS256' }).setSubject(user).setIssuedAt().setExpirationTime('24h').sign(key);
  }
  return tokens;
}

/** The demo page's address carrying the users' tokens in its fragment (never sent to a server). */
export function demoUrl(base: string, tokens: Readonly<Record<string, string>>): string {
  return `${base}/#${new URLSearchParams(tokens).toString()}`;
}
