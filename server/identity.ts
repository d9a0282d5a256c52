import type { IncomingMessage } from 'node:http';
import { isRecord } from '../src/protocol/change.ts';
import { errorMessage } from '../src/protocol/errors.ts';

/** The scope name that stands for every scope: an identity holding it reads and writes everything. */
export const ALL_SCOPES = '*';

/**
 * Who a connection (or an HTTP request) acts as. `id` names the identity: operation ids are kept
 * per identity, and `server.reset(filter)` picks connections by it. `scopes` are the scopes it may
 * read (and, by default, write); `'*'` means all of them.
 */
export interface Identity {
  readonly id: string;
  readonly scopes: readonly string[];
}

/** What an {@link Authenticate} hook is told besides the token. */
export interface AuthenticateContext {
  /** The `clientId` of the `sync` (absent for an HTTP request). */
  clientId?: string;
  /** The HTTP request: the WebSocket upgrade, or the API request. */
  request: IncomingMessage;
}

/**
 * Decides who a token belongs to: an {@link Identity}, or `null` to refuse (the socket is closed
 * with 4001, an HTTP request answered 401). May be async; an error it throws is a refusal too.
 * `true` (from hooks written before identities) is the identity `''` with every scope, `false` a
 * refusal. The token must never be logged or echoed.
 */
export type Authenticate = (
  token: string | undefined,
  context: AuthenticateContext,
) => Identity | null | boolean | Promise<Identity | null | boolean>;

/**
 * The identity of a server without `authenticate`, and of `true` from a hook: it sees everything.
 * Its operation ids are kept as they are sent, as before identities existed.
 */
export const EVERYONE: Identity = Object.freeze({ id: '', scopes: Object.freeze([ALL_SCOPES]) });

/** Most scopes one identity may hold (a bigger list is a refusal: a hook's mistake, not a user's). */
const MAX_SCOPES = 10_000;

/** The identity an authenticate hook returned, or why it is not one (a refusal). */
export function toIdentity(value: unknown): Identity | string {
  if (value === true || value === EVERYONE) return EVERYONE;
  if (value === false || value === null || value === undefined) return 'refused';
  if (!isRecord(value) || typeof value.id !== 'string' || !Array.isArray(value.scopes)) {
    return 'authenticate returned neither an identity ({ id, scopes }) nor null';
  }
  if (value.id.length === 0) return 'authenticate returned an identity with an empty id';
  const scopes: unknown[] = value.scopes;
  if (scopes.length > MAX_SCOPES || !scopes.every((scope): scope is string => typeof scope === 'string')) {
    return `authenticate returned scopes that are not a list of at most ${MAX_SCOPES} strings`;
  }
  return Object.freeze({ id: value.id, scopes: Object.freeze([...scopes]) });
}

/** What one identity may read: every scope, or the ones it names. */
export class ScopeSet {
  readonly all: boolean;
  readonly #scopes: ReadonlySet<string>;

  constructor(scopes: readonly string[]) {
    this.all = scopes.includes(ALL_SCOPES);
    this.#scopes = new Set(scopes);
  }

  has(scope: string): boolean {
    return this.all || this.#scopes.has(scope);
  }

  /** The scopes named; meaningless when `all`. */
  get names(): string[] {
    return [...this.#scopes];
  }
}

/**
 * The key an operation id is kept under: ids are per identity, so one identity can never pre-empt
 * another's id. The identity `''` keeps its ids as sent (as before identities existed); any other
 * prefixes its id's length and id, which no two identities share.
 */
export function operationKey(identityId: string, operationId: string): string {
  return identityId === '' ? operationId : `${identityId.length}:${identityId}:${operationId}`;
}

/** Says why an app's hook failed, with every occurrence of the token cut out. */
export function withoutToken(message: string, token: string | undefined): string {
  return token === undefined || token.length === 0 ? message : message.replaceAll(token, '[token]');
}

/**
 * Who `token` belongs to, by `authenticate` (everyone's identity without one); undefined when it
 * is refused. A hook that throws or answers nonsense refuses too, and is logged as `who`, never
 * with the token.
 */
export async function identify(
  authenticate: Authenticate | undefined,
  token: string | undefined,
  context: AuthenticateContext,
  who: string,
): Promise<Identity | undefined> {
  if (!authenticate) return EVERYONE;
  let identity: Identity | string;
  try {
    identity = toIdentity(await authenticate(token, context));
  } catch (error) {
    identity = `authenticate threw: ${errorMessage(error)}`;
  }
  if (typeof identity !== 'string') return identity;
  if (identity !== 'refused') process.emitWarning(`sync server: refused ${who}: ${withoutToken(identity, token)}`);
  return undefined;
}
