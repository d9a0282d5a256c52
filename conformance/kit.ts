import { randomBytes } from 'node:crypto';
import type { LSN } from '../src/protocol/lsn.ts';
import type { OperationCompleteMessage, OperationErrorMessage } from '../src/protocol/wire.ts';
import { Session, type Batch, type RunLog } from './session.ts';

export interface KitOptions {
  /** The server's sync endpoint, `ws://` or `wss://`. */
  url: string;
  /** Sent in every `sync`. */
  token?: string;
  /** Ms to wait for each frame the kit expects. */
  timeout: number;
  /** Bytes the kit may write to carry the log across a 32-bit LSN boundary. */
  boundaryBytes: number;
}

/** The kit could not run at all (no connection, or its sync refused): no rule was judged. */
export class SetupError extends Error {
  override readonly name = 'SetupError';
}

/** An operation as the kit sends it. */
export interface KitOperation {
  id: string;
  type: string;
  payload?: unknown;
}

/** What became of an operation the kit sent. */
export interface Written {
  operation: KitOperation;
  answer: OperationCompleteMessage | OperationErrorMessage;
  /** Where the answer came in the connection's frames. */
  answerSeq: number;
  /** The batch that carried its change, when it was applied and names an entity. */
  batch?: Batch;
  batchSeq?: number;
}

/**
 * What every rule works with: connections to the server under test, the kit's own entity type (a
 * random one, so that the kit can run against a live server), fresh ids, and what was learnt so far.
 */
export class Kit {
  readonly options: KitOptions;
  /** The entity type of everything the kit writes. */
  readonly entityType: string;
  readonly clientId: string;
  readonly log: RunLog = { malformed: [], disorder: [] };
  /** The newest position the kit has seen the log at. */
  head: LSN = '0/0';
  /** A sync reached sync_complete: the rules that need a live connection can run. */
  synced = false;
  /** The server accepted the kit's upsert: the rules that write can run. */
  writable = false;
  readonly #run: string;
  readonly #sessions = new Set<Session>();
  /** The entities the kit has written, deleted again by `cleanUp`. */
  readonly #written = new Set<string>();
  #ids = 0;
  #connections = 0;
  #connected = false;

  constructor(options: KitOptions) {
    this.options = options;
    this.#run = randomBytes(4).toString('hex');
    this.entityType = `conformance-${this.#run}`;
    this.clientId = `conformance-${this.#run}`;
  }

  /** A fresh id: `conformance-<run>-<what>-<n>`. */
  id(what: string): string {
    return `conformance-${this.#run}-${what}-${++this.#ids}`;
  }

  /** Opens a connection, not yet synced; it is closed when the rule ends. */
  async connect(): Promise<Session> {
    let session: Session;
    try {
      session = await Session.open({ ...this.options, name: `connection ${++this.#connections}`, clientId: this.clientId, log: this.log });
    } catch (error) {
      // Before any connection worked nothing can be judged; later, a server that stopped
      // accepting connections fails the rule that found it.
      if (!this.#connected) throw new SetupError(error instanceof Error ? error.message : String(error));
      throw error;
    }
    this.#connected = true;
    this.#sessions.add(session);
    return session;
  }

  /** Opens a connection and syncs it from the newest position known: live, with no catch-up to speak of. */
  async live(): Promise<Session> {
    const session = await this.connect();
    const answer = await session.sync(this.head);
    if (answer.outcome !== 'complete') {
      throw new Error(`a sync from ${this.head}, a position the server sent, was answered with ${answer.outcome}${answer.message ? ` ("${answer.message}")` : ''}`);
    }
    this.head = answer.reached;
    return session;
  }

  /** Deletes the entities the kit wrote, so that a live server keeps none of them (its log does). */
  async cleanUp(): Promise<void> {
    if (!this.writable || this.#written.size === 0) return;
    const session = await this.live();
    const deletes = [...this.#written].map((entityId) => this.delete(entityId));
    for (const operation of deletes) this.send(session, operation);
    for (const operation of deletes) await this.answer(session, operation.id);
    this.closeSessions();
  }

  /** Closes the connections the rule opened. */
  closeSessions(): void {
    for (const session of this.#sessions) session.close();
    this.#sessions.clear();
  }

  upsert(entityId: string, data: unknown): KitOperation {
    this.#written.add(entityId);
    return { id: this.id('upsert'), type: 'upsert', payload: { entityType: this.entityType, entityId, data } };
  }

  patch(entityId: string, data: unknown): KitOperation {
    this.#written.add(entityId);
    return { id: this.id('patch'), type: 'patch', payload: { entityType: this.entityType, entityId, data } };
  }

  delete(entityId: string): KitOperation {
    return { id: this.id('delete'), type: 'delete', payload: { entityType: this.entityType, entityId } };
  }

  /** Sends `operation` on `session`. */
  send(session: Session, operation: KitOperation): void {
    session.send({ type: 'operation', operation });
  }

  /** Takes the answer to the operation `id` (operation_complete or operation_error), waiting for it. */
  answer(session: Session, id: string): Promise<{ answer: OperationCompleteMessage | OperationErrorMessage; seq: number }> {
    return session.take(({ frame, seq }) =>
      (frame.type === 'operation_complete' || frame.type === 'operation_error') && frame.id === id ? { answer: frame, seq } : undefined,
    `the answer to operation ${id}`);
  }

  /**
   * Sends `operation` and waits for its answer and, when it was applied, for the batch that
   * carries its change (in either order).
   */
  async write(session: Session, operation: KitOperation): Promise<Written> {
    // Its change comes after it was sent: an earlier batch for the same entity, also one written
    // on another connection and still on its way to this one, is not it.
    await session.reach(this.head);
    const sentAt = session.received;
    this.send(session, operation);
    const { answer, seq } = await this.answer(session, operation.id);
    const written: Written = { operation, answer, answerSeq: seq };
    const entityId = entityIdOf(operation);
    if (answer.type !== 'operation_complete' || entityId === undefined) return written;
    const carried = await session.takeChangeOf(this.entityType, entityId, `the change of operation ${operation.id} (${this.entityType}/${entityId})`, sentAt);
    if (carried.batch.lsn !== undefined) this.head = carried.batch.lsn;
    return { ...written, batch: carried.batch, batchSeq: carried.seq };
  }

  /**
   * Writes and requires it to be applied; every change the server made before it has then
   * reached `session` (batches come in LSN order).
   */
  async applied(session: Session, operation: KitOperation): Promise<Written & { batch: Batch }> {
    const written = await this.write(session, operation);
    if (written.answer.type === 'operation_error') {
      throw new Error(`the server refused the kit's ${operation.type} ${operation.id}: ${written.answer.message}`);
    }
    if (!written.batch) throw new Error(`operation ${operation.id} names no entity`);
    return { ...written, batch: written.batch };
  }
}

/** The entity id an operation's payload names, if any. */
function entityIdOf(operation: KitOperation): string | undefined {
  const payload = operation.payload;
  if (typeof payload !== 'object' || payload === null) return undefined;
  const id = (payload as { entityId?: unknown }).entityId;
  return typeof id === 'string' && id !== '' ? id : undefined;
}
