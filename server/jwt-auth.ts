import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Authenticate, Identity } from './identity.ts';

export interface JwtOptions {
  /** A shared secret: tokens are signed with HS256 (or HS384/HS512). At least 32 bytes. */
  secret?: string | Uint8Array;
  /** Public keys (a JWKS document) to check RS256/ES256/EdDSA tokens against. */
  jwks?: JSONWebKeySet;
  /** Where to fetch the public keys from (an identity provider's `jwks_uri`); cached by `jose`. */
  jwksUrl?: string;
  /** The `aud` a token must carry, when set. */
  audience?: string | string[];
  /** The `iss` a token must carry, when set. */
  issuer?: string | string[];
  /** The claim holding the scopes: a list of strings, or one space-separated string. Default `scopes`. */
  scopesClaim?: string;
  /** Seconds of clock difference tolerated for `exp` and `nbf`. Default 0. */
  clockTolerance?: number;
}

const SECRET_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const MIN_SECRET_BYTES = 32;

/**
 * An {@link Authenticate} hook for JSON Web Tokens: the signature (a shared secret or public keys),
 * `exp` and `nbf` (a token without `exp` is accepted), `aud` and `iss` when asked for. The
 * identity is `sub`; its scopes come from `scopesClaim`. A token that fails any check is refused.
 */
export function jwtAuthenticator(options: JwtOptions): Authenticate {
  const verify = verifier(options);
  const claim = options.scopesClaim ?? 'scopes';
  return async (token) => {
    if (token === undefined || token.length === 0) return null;
    try {
      return identityOf((await verify(token)).payload, claim);
    } catch (error) {
      // A token that fails a check is an ordinary refusal; anything else (the keys cannot be
      // fetched) is the server's trouble, and logged.
      if (error instanceof errors.JOSEError && !(error instanceof errors.JWKSTimeout)) return null;
      throw error;
    }
  };
}

type Verify = (token: string) => Promise<{ payload: JWTPayload }>;

function verifier(options: JwtOptions): Verify {
  const checks = {
    ...(options.audience === undefined ? {} : { audience: options.audience }),
    ...(options.issuer === undefined ? {} : { issuer: options.issuer }),
    clockTolerance: options.clockTolerance ?? 0,
  };
  const sources = [options.secret, options.jwks, options.jwksUrl].filter((source) => source !== undefined);
  if (sources.length !== 1) throw new Error('jwtAuthenticator needs exactly one of secret, jwks and jwksUrl');
  if (options.secret !== undefined) {
    const secret = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
    if (secret.length < MIN_SECRET_BYTES) throw new Error(`a JWT secret must have at least ${MIN_SECRET_BYTES} bytes`);
    return (token) => jwtVerify(token, secret, { ...checks, algorithms: SECRET_ALGORITHMS });
  }
  const keys: JWTVerifyGetKey = options.jwks !== undefined ? createLocalJWKSet(options.jwks) : createRemoteJWKSet(new URL(options.jwksUrl!));
  return (token) => jwtVerify(token, keys, checks);
}

function identityOf(payload: JWTPayload, claim: string): Identity | null {
  if (typeof payload.sub !== 'string' || payload.sub.length === 0) return null;
  const value = payload[claim];
  const scopes = typeof value === 'string' ? value.split(' ').filter((scope) => scope.length > 0)
    : Array.isArray(value) && value.every((scope) => typeof scope === 'string') ? (value as string[])
    : value === undefined ? []
    : null;
  return scopes === null ? null : { id: payload.sub, scopes };
}
