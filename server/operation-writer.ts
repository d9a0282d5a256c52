import { createHash } from 'node:crypto';
import type { LSN } from '../src/protocol/lsn.ts';
import type { WireOperation } from '../src/protocol/wire.ts';
import { errorMessage } from '../src/protocol/errors.ts';
import { parseEdit, type Edit } from './edit.ts';
import { ALL_SCOPES, operationKey, type Identity } from './identity.ts';
import { editProblem, operationProblem, type InputLimits } from './limits.ts';
import { operationToEdit, withTimestamp } from './operations.ts';
import { StoreRefusedError, StoreUnavailableError, type AppendResult, type SyncStore, type WriteSequence } from './sync-store.ts';
import type { Authorize, OperationHandler } from './write-rules.ts';

/** Ms after which a deferred operation that was not sent again (the client cleared it) stops holding back the rest. */
export const DEFERRED_EXPIRY_MS = 60_000;

/** How one operation ended. */
export type OperationOutcome =
  | { kind: 'applied'; lsn: LSN; position: bigint }
  /** Not applied. `retryable`: nothing was stored and the client should send it again later. */
  | { kind: 'rejected'; message: string; retryable: boolean }
  /** The store failed for good: neither applied nor rejected; the client must send it elsewhere. */
  | { kind: 'store-failed' };

/** What decides what a write may do, shared by every connection. */
export interface WriteRules {
  store: SyncStore;
  limits: InputLimits;
  now(): number;
  /** App-defined operation types (one named `upsert`, `patch` or `delete` replaces the built-in one). */
  operations?: Readonly<Record<string, OperationHandler>>;
  authorize?: Authorize;
}

/**
 * One connection's writes: checks each operation against the input limits, turns it into edits
 * (the built-in types or an app's handler), has them authorized and appends them to the store in
 * the order the client sent it, under the sender's identity. Once an operation was deferred (the
 * store could not take it now), every later one is deferred too, untried, until the deferred ids
 * come back, so an outage never reorders one client's writes.
 */
export class OperationWriter {
  readonly #rules: WriteRules;
  /** Ids answered `retryable`, with when. */
  readonly #deferred = new Map<string, number>();
  /** This client's writes commit in the order they arrived (see SyncStore.append). */
  readonly #writes: WriteSequence = {};
  /**
   * Each write is checked (a handler, authorize: maybe slow) after the one before was handed to
   * the store, so the appends are made in the order the operations arrived.
   */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(rules: WriteRules) {
    this.#rules = rules;
  }

  /** Applies `operation` as `identity`; never rejects. A poison operation is refused without disturbing the rest. */
  write(operation: WireOperation, identity: Identity): Promise<OperationOutcome> {
    const outcome = this.#turn.then(() => this.#write(operation, identity));
    this.#turn = outcome.catch(() => {});
    return outcome.then((result) => result.outcome);
  }

  /** Settles once the store has been handed the append (the next write may then be checked), with the outcome to come. */
  async #write(operation: WireOperation, identity: Identity): Promise<{ outcome: Promise<OperationOutcome> }> {
    const decided = (outcome: OperationOutcome) => ({ outcome: Promise.resolve(outcome) });
    const { store, limits } = this.#rules;
    const problem = operationProblem(operation, limits);
    if (problem !== undefined) return decided(rejected(`operation rejected: ${problem}`));
    const edits = await this.#edits(operation, identity);
    if (typeof edits === 'string') return decided(rejected(edits));
    for (const edit of edits) {
      const tooBig = editProblem(edit, limits);
      if (tooBig !== undefined) return decided(rejected(`operation rejected: ${tooBig}`));
    }
    if (this.#holdBack(operation.id)) {
      return decided(this.#defer(operation.id, 'an operation sent before it was deferred and has not been sent again yet; nothing was stored, so it can be sent again after that one'));
    }
    const refusal = await authorizeEdits(this.#rules, identity, operation, edits);
    if (refusal !== undefined) return decided(rejected(refusal));
    const fingerprint = fingerprintOf(operation);
    // Without an app's authorize, the default rule is checked by the store itself, in its write
    // order: a write racing this one cannot move the entity between the check and the append.
    const allowedScopes = storeScopes(this.#rules, identity);
    const appended = store.append(edits, operationKey(identity.id, operation.id), this.#writes, {
      fingerprint,
      ...(allowedScopes === undefined ? {} : { allowedScopes }),
    });
    return { outcome: this.#settle(operation, fingerprint, appended) };
  }

  async #settle(operation: WireOperation, fingerprint: string, appended: Promise<AppendResult>): Promise<OperationOutcome> {
    const { store } = this.#rules;
    try {
      const result = await appended;
      if (result.duplicate && result.fingerprint !== undefined && result.fingerprint !== fingerprint) {
        return rejected(`operation rejected: the id ${JSON.stringify(operation.id.slice(0, 80))} was already used for a different operation; nothing was stored (give each operation a new id)`);
      }
      return { kind: 'applied', lsn: result.lsn, position: result.position };
    } catch (error) {
      // The store is down for a while and this write was certainly not applied.
      if (error instanceof StoreUnavailableError) return this.#defer(operation.id, error.message);
      // The store can never hold this write: rejected for good, like an invalid payload.
      if (error instanceof StoreRefusedError) return rejected(`operation rejected: ${error.message}`);
      // Not stored, so never acknowledged, and no final answer either: only another connection,
      // to a store that works again, can take it.
      if (store.failure) return { kind: 'store-failed' };
      // Anything else failed on this operation alone: it is answered, and the connection goes on.
      process.emitWarning(`sync server: operation ${JSON.stringify(operation.id.slice(0, 80))} failed: ${errorMessage(error)}`);
      return rejected(`operation rejected: the server could not apply it (${errorMessage(error)})`);
    }
  }

  /** The edits an operation makes, or why it is refused. */
  async #edits(operation: WireOperation, identity: Identity): Promise<Edit[] | string> {
    const { store, now, operations } = this.#rules;
    const handler = operations !== undefined && Object.hasOwn(operations, operation.type) ? operations[operation.type] : undefined;
    const timestamp = now();
    if (!handler) {
      const edit = operationToEdit(operation, timestamp);
      return typeof edit === 'string' ? edit : [edit];
    }
    let items: readonly unknown[];
    try {
      items = await handler(operation.payload, { identity, now: timestamp, entity: (entityType, entityId) => store.entity(entityType, entityId) });
    } catch (error) {
      return `operation rejected: ${errorMessage(error)}`;
    }
    if (!Array.isArray(items) || items.length === 0) return `operation rejected: the ${operation.type} handler returned no changes`;
    const edits: Edit[] = [];
    for (const [index, item] of items.entries()) {
      const edit = parseEdit(item);
      if (typeof edit === 'string') return `operation rejected: the ${operation.type} handler returned an invalid change #${index}: ${edit}`;
      edits.push(withTimestamp(edit, timestamp));
    }
    return edits;
  }

  /**
   * True when `id` must wait behind a deferred operation. A deferred id that comes back is tried
   * (the client re-sends in order, so it is the next in line); one not seen again for
   * DEFERRED_EXPIRY_MS was dropped by the client and holds nothing back any longer.
   */
  #holdBack(id: string): boolean {
    const now = this.#rules.now();
    for (const [deferredId, at] of this.#deferred) {
      if (now - at > DEFERRED_EXPIRY_MS) this.#deferred.delete(deferredId);
    }
    if (this.#deferred.delete(id)) return false;
    return this.#deferred.size > 0;
  }

  #defer(id: string, why: string): OperationOutcome {
    this.#deferred.set(id, this.#rules.now());
    return { kind: 'rejected', message: `operation not applied: ${why}`, retryable: true };
  }
}

/**
 * Why the app's authorize refuses one of `edits` (an error it throws is logged and refuses);
 * undefined when it allows them all, or there is no authorize.
 */
export async function authorizeEdits(
  { authorize, store }: WriteRules,
  identity: Identity,
  operation: { id: string; type: string; payload: unknown },
  edits: readonly Edit[],
): Promise<string | undefined> {
  if (!authorize) return undefined;
  for (const change of edits) {
    let verdict: unknown;
    try {
      const current = await store.entity(change.entityType, change.entityId);
      verdict = await authorize(identity, { id: operation.id, type: operation.type, payload: operation.payload, change }, current);
    } catch (error) {
      process.emitWarning(`sync server: authorize failed for identity ${JSON.stringify(identity.id)}, operation ${JSON.stringify(operation.id.slice(0, 80))}: ${errorMessage(error)}`);
      return 'operation rejected: the server could not authorize it';
    }
    if (verdict === true) continue;
    return `operation rejected: ${typeof verdict === 'string' && verdict.length > 0 ? verdict : 'not allowed'}`;
  }
  return undefined;
}

/** The scopes the store must hold a write by: none with an app's authorize (it decided) or for an identity of every scope. */
export function storeScopes(rules: WriteRules, identity: Identity): readonly string[] | undefined {
  return rules.authorize || identity.scopes.includes(ALL_SCOPES) ? undefined : identity.scopes;
}

function rejected(message: string): OperationOutcome {
  return { kind: 'rejected', message, retryable: false };
}

/** A digest of what an operation asks for: a repeat has the same, another operation under the same id almost surely not. */
export function fingerprintOf(operation: { type: string; payload: unknown }): string {
  return createHash('sha256').update(JSON.stringify([operation.type, operation.payload ?? null])).digest('base64url').slice(0, 22);
}
