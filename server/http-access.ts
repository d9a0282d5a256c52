import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { identify, type Authenticate, type Identity } from './identity.ts';

/** Who may reach the server from where: the origins of web pages, and the names it answers to. */
export interface AccessPolicy {
  /** Page origins allowed to read the HTTP API (CORS) and open the WebSocket; undefined: see {@link corsHeaders}. */
  allowedOrigins?: ReadonlySet<string>;
  /** `Host` names answered (no port, lower case); undefined: any. */
  allowedHosts?: ReadonlySet<string>;
  /** No authenticate: the HTTP API is open, and (without allowedOrigins) readable from any page. */
  open: boolean;
}

/** The names a server bound to loopback answers to when `allowedHosts` is not given. */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/**
 * `allowedHosts` with its default: bound to a loopback address, only the loopback names (a web
 * page on another name that resolves to 127.0.0.1, DNS rebinding, is refused); bound to any other
 * address, any name unless the option names them. `'*'` in the list allows any.
 */
export function hostPolicy(allowedHosts: readonly string[] | undefined, boundHost: string): ReadonlySet<string> | undefined {
  if (allowedHosts !== undefined) return allowedHosts.includes('*') ? undefined : new Set(allowedHosts.map((host) => host.toLowerCase()));
  return isLoopback(boundHost) ? new Set([...LOOPBACK_NAMES, bracketed(boundHost.toLowerCase())]) : undefined;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

function bracketed(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** True when the request's `Host` is one the server answers to. */
export function hostAllowed(request: IncomingMessage, policy: AccessPolicy): boolean {
  if (!policy.allowedHosts) return true;
  const host = request.headers.host;
  if (host === undefined) return false;
  const name = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(host.toLowerCase())?.[1];
  return name !== undefined && policy.allowedHosts.has(name);
}

/** True when a WebSocket upgrade's `Origin` may open a socket (none: not from a web page). */
export function originAllowed(request: IncomingMessage, policy: AccessPolicy): boolean {
  const origin = request.headers.origin;
  return origin === undefined || !policy.allowedOrigins || policy.allowedOrigins.has(origin);
}

/**
 * The CORS headers for an API answer: the request's origin echoed when `allowedOrigins` names it;
 * `*` on an open server (no authenticate) without `allowedOrigins`, as before identities; else
 * none, so that no other page can read the answer.
 */
export function corsHeaders(request: IncomingMessage, policy: AccessPolicy): Record<string, string> {
  const methods = { 'Access-Control-Allow-Methods': 'GET, POST, OPTIONS', 'Access-Control-Allow-Headers': 'Content-Type, Authorization' };
  if (policy.allowedOrigins) {
    const origin = request.headers.origin;
    if (origin === undefined || !policy.allowedOrigins.has(origin)) return { Vary: 'Origin' };
    return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin', ...methods };
  }
  return policy.open ? { 'Access-Control-Allow-Origin': '*', ...methods } : {};
}

/** The bearer token of a request, if it carries one. */
export function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

/** Who an API request acts as; undefined when it is refused. */
export function requestIdentity(request: IncomingMessage, authenticate: Authenticate | undefined): Promise<Identity | undefined> {
  return identify(authenticate, bearerToken(request), { request }, 'an HTTP request');
}
