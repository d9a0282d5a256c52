import { ContextProvider } from '@lit/context';
import { html, LitElement, type PropertyDeclarations, type TemplateResult } from 'lit';
import { SyncError } from '../protocol/errors.ts';
import { SYNC_EVENT_TYPES, type SyncEventDetails, type SyncEventType } from '../client/service-events.ts';
import { getNetworkStatus, type NetworkStatus } from '../client/network.ts';
import { WorkerSyncService, type SyncServiceOptions } from '../client/sync-service.ts';
import type { WorkerEndpoint } from '../client/worker-endpoint.ts';
import type { Database } from '../client/database.ts';
import type { ObserveListener, ObserveOptions } from '../client/live-query.ts';
import { Observations } from '../client/observations.ts';
import type { SyncEntity } from '../client/pending-layer.ts';
import { INITIAL_STATE, type OperationInput, type OperationResult, type SyncState } from '../protocol/state.ts';
import { syncStateContext } from './context.ts';
import { EVENT_CLASSES } from './dispatch.ts';
import type { SyncConnectionElementEventMap } from './sync-connection-events.ts';

/** Properties whose change restarts the client on a new worker. */
const CLIENT_PROPERTIES = [
  'url', 'clientId', 'dbName', 'heartbeatInterval', 'backoffInitial', 'backoffMax',
] as const;

/**
 * Keeps the page in sync with a server. A dedicated worker owns the WebSocket, applies the
 * server's changes into IndexedDB and drains the durable queue of operations.
 *
 * @element sync-connection
 * @slot - Content, e.g. a `<sync-status>`, which receives the state through context.
 *
 * @attr {string} url - The sync endpoint: relative, http(s) or ws(s); relative and http(s) URLs become ws(s).
 * @attr {string} client-id - Default: a random id created once and stored in the database, shared by all tabs.
 * @attr {string} db-name - IndexedDB database; default `sync-connection`.
 * @attr {boolean} manual - Do not connect when attached; call `connect()`.
 * @attr {number} heartbeat-interval - Milliseconds between heartbeats; default 15000.
 * @attr {number} backoff-initial - Upper bound of the first reconnection delay in ms; default 500.
 * @attr {number} backoff-max - Cap of the reconnection delay in ms; default 30000.
 * @attr {'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'error'} status - Written by the element: the connection status.
 * @attr {boolean} connected - Written by the element: present while connected.
 * @attr {boolean} syncing - Written by the element: present while a catch-up runs.
 * @attr {string} last-lsn - Written by the element: the stored resume point (LSN).
 * @attr {number} pending - Written by the element: operations not yet acknowledged.
 * @attr {'leader' | 'follower'} role - Written by the element: whether this tab holds the shared connection.
 *
 * @fires {ConnectedEvent} connected - The socket opened and the resume point was sent; `detail` `{ clientId, lastLSN }`.
 * @fires {DisconnectedEvent} disconnected - The socket closed; `detail` `{ code, reason, willReconnect }`.
 * @fires {ReconnectingEvent} reconnecting - A reconnection is scheduled; `detail` `{ attempt, delay }`.
 * @fires {SyncStartedEvent} sync_started - A catch-up started; `detail` `{ lsn?, total? }`.
 * @fires {SyncProgressEvent} sync_progress - Changes applied during a catch-up; `detail` `{ applied, total? }`.
 * @fires {SyncCompletedEvent} sync_completed - The catch-up is done and the store is live; `detail` `{ lsn }`.
 * @fires {SyncResetEvent} sync_reset - The server's log does not continue from the stored resume point: the local store was emptied (queued operations kept) and syncs again from the start; `detail` `{ reason? }`.
 * @fires {ChangesEvent} changes - Changes were applied to the store, in order; `detail` `{ changes, lsn? }`.
 * @fires {OperationCompleteEvent} operation_complete - The server acknowledged an operation; `detail` `{ id, lsn? }`.
 * @fires {OperationErrorEvent} operation_error - An operation was refused for good and its effects rolled back in every tab; `detail` `{ id, message, entities }` (the entities it touched).
 * @fires {StateChangeEvent} state_change - A new `SyncState` snapshot; `detail` `{ state }`.
 * @fires {SyncMessageEvent} message - A server frame of a type the protocol does not define; `detail` `{ message }`.
 * @fires {SyncErrorEvent} error - Something went wrong; `detail` `{ code, message, cause? }`. Neither bubbles nor is composed.
 */
export class SyncConnectionElement extends LitElement {
  /**
   * Registers the element; a tag already defined is left as it is.
   * @param {string} tag - The tag name; default `sync-connection`.
   * @param registry - The registry to define it in; default the global `customElements`.
   */
  static define(tag = 'sync-connection', registry: CustomElementRegistry = customElements): void {
    if (!registry.get(tag)) registry.define(tag, this);
  }

  // Declared, not decorated: decorators would be lowered for es2022 into helpers and would take
  // every private member of the class with them into WeakMaps.
  static override properties: PropertyDeclarations = {
    url: {},
    clientId: { attribute: 'client-id' },
    dbName: { attribute: 'db-name' },
    manual: { type: Boolean },
    heartbeatInterval: { type: Number, attribute: 'heartbeat-interval' },
    backoffInitial: { type: Number, attribute: 'backoff-initial' },
    backoffMax: { type: Number, attribute: 'backoff-max' },
    token: { attribute: false },
    database: { attribute: false },
  };

  /** The sync endpoint: relative, http(s) or ws(s). */
  declare url: string;

  /** The client id; empty means the one stored in the database. */
  declare clientId: string;

  /** The IndexedDB database; empty means `sync-connection`. */
  declare dbName: string;

  /** Do not connect when attached. */
  declare manual: boolean;

  /** Milliseconds between heartbeats (default 15000). */
  declare heartbeatInterval: number | undefined;

  /** Upper bound of the first reconnection delay in ms (default 500). */
  declare backoffInitial: number | undefined;

  /** Cap of the reconnection delay in ms (default 30000). */
  declare backoffMax: number | undefined;

  /**
   * Sent to the server in `sync`; a property only, never reflected into an attribute. A new token
   * does not restart the client: every later `sync` carries it, and a connection the server
   * refused for the old one connects again.
   */
  declare token: string | undefined;

  /**
   * Your own store for the server's changes, instead of the built-in IndexedDB store: each batch
   * is one `transaction`, and the resume point moves only after it commits. A property only;
   * changing it restarts the client.
   */
  declare database: Database | undefined;

  /** Replaces the worker factory (tests, custom builds). Set before the element is attached. */
  createWorker: (() => WorkerEndpoint) | undefined;

  #service: WorkerSyncService | undefined;
  #startedWith: string | undefined;
  #startedDatabase: Database | undefined;
  #startedToken: string | undefined;
  #unsubscribe: (() => void)[] = [];
  readonly #stateListeners = new Set<(state: SyncState) => void>();
  /** Live queries made on this element; they move with it to a restarted client and end with it. */
  readonly #observations = new Observations();
  readonly #provider = new ContextProvider(this, { context: syncStateContext, initialValue: INITIAL_STATE });

  constructor() {
    super();
    this.url = '';
    this.clientId = '';
    this.dbName = '';
    this.manual = false;
  }

  override render(): TemplateResult {
    return html`<slot></slot>`;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    // The first attach starts in the first update, so that properties a framework sets right
    // after inserting the element (a token, a database) are there. A re-attach starts here.
    if (this.hasUpdated && !this.#service && this.url) this.#start();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    // Moving the element (detached and attached in one task) keeps its client.
    queueMicrotask(() => {
      if (!this.isConnected) {
        this.#observations.close();
        this.#retire(this.#stop());
      }
    });
  }

  protected override willUpdate(): void {
    if (this.isConnected && (this.#settings() !== this.#startedWith || this.database !== this.#startedDatabase)) {
      const previous = this.#stop();
      if (this.url) this.#start(previous);
      this.#retire(previous);
    } else if (this.#service && this.token !== this.#startedToken) {
      this.#startedToken = this.token;
      this.#service.setToken(this.token).catch(() => {
        // Reported through the service's `error` event.
      });
    }
  }

  /** What the running client was started with; a change restarts it. */
  #settings(): string {
    return JSON.stringify(CLIENT_PROPERTIES.map((key) => this[key] ?? null));
  }

  /** Opens the connection (also when `manual`); it reconnects until `disconnect()`. */
  connect(): Promise<void> {
    return this.#use((service) => service.connect());
  }

  /**
   * Closes the connection and stops reconnecting.
   * @param graceful - Let queued frames flush before the socket closes; default `true`.
   */
  disconnect(graceful = true): Promise<void> {
    return this.#service ? this.#service.disconnect(graceful) : Promise.resolve();
  }

  /** Connects now, skipping a backoff delay under way. */
  forceConnect(): Promise<void> {
    return this.#use((service) => service.forceConnect());
  }

  /**
   * Stores an operation durably and sends it; resolves with `{ id, lsn? }` when the server
   * acknowledges it, rejects when the server refuses it or the input is invalid. From the call on,
   * every read and live query in every tab shows its effects, until the server's state covers it
   * (or it is refused, and rolled back).
   * @param operation - `{ type, payload?, id?, priority?, effects? }`: `upsert`, `patch` (an RFC 7386 merge patch) and `delete` take `{ entityType, entityId, data? }`; another type may declare `effects`, a list of such with their `type`. `id` defaults to `crypto.randomUUID()`.
   */
  queueOperation(operation: OperationInput): Promise<OperationResult> {
    return this.#use((service) => service.queueOperation(operation));
  }

  /** Drops every unacknowledged operation; their promises reject. Resolves with how many. */
  clearOperationQueue(): Promise<number> {
    return this.#use((service) => service.clearOperationQueue());
  }

  /** Asks the server to resend everything after the stored LSN. */
  sendSyncMessage(): Promise<void> {
    return this.#use((service) => service.sendSyncMessage());
  }

  /** The current state snapshot (immutable; a new object on every change). */
  getState(): SyncState {
    return this.#service?.getState() ?? INITIAL_STATE;
  }

  /**
   * Calls `listener` with each new state; returns the function that unsubscribes it.
   * @param listener - Called with each new `SyncState` snapshot.
   */
  onStateChange(listener: (state: SyncState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** The browser's network status: `{ online, effectiveType?, downlink?, rtt? }`. */
  getNetworkStatus(): NetworkStatus {
    return getNetworkStatus();
  }

  /**
   * One entity as this page sees it: the server's value with every queued operation not yet
   * settled applied on top (`pending: true` while the server has not acknowledged one), or `undefined`.
   * @param entityType - The entity's type, e.g. `note`.
   * @param entityId - The entity's id.
   */
  getEntity(entityType: string, entityId: string): Promise<SyncEntity | undefined> {
    return this.#use((service) => service.getEntity(entityType, entityId));
  }

  /**
   * Every entity of one type as this page sees it (see `getEntity`), in entity id order.
   * @param entityType - The entity type, e.g. `note`.
   */
  getEntities(entityType: string): Promise<SyncEntity[]> {
    return this.#use((service) => service.getEntities(entityType));
  }

  /**
   * A live query over one entity type: `listener(rows, { added, updated, removed })` is called once
   * with the current result, then once per committed change that alters it (a server batch, a
   * write, an acknowledgement, a rollback, a clear or a reset, in any tab). `rows` is a new frozen
   * array of the records `getEntity` returns; a row that did not change keeps its identity.
   * Returns the function that stops it; removing the element stops it too.
   * @param entityType - The entity type, e.g. `note`.
   * @param listener - Called with the rows and what was added, updated and removed since its last call.
   * @param options - `{ filter?(entity), sort?(a, b), limit? }`; default order: by entity id.
   */
  observe(entityType: string, listener: ObserveListener, options?: ObserveOptions): () => void {
    if (this.database) throw new SyncError('storage', 'This element writes the changes to your own Database: observe that instead');
    return this.#observations.add(entityType, listener, options);
  }

  #use<T>(action: (service: WorkerSyncService) => Promise<T>): Promise<T> {
    // Called before the first update (right after insertion): start with what is set now.
    if (!this.#service && this.isConnected && this.url) this.#start();
    if (!this.#service) {
      const reason = this.isConnected ? 'has no url' : 'is not attached to a document';
      return Promise.reject(new SyncError('worker', `<${this.localName}> ${reason}`));
    }
    try {
      return action(this.#service);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Starts a client; `previous`, a client on the same database, hands its pending promises on. */
  #start(previous?: WorkerSyncService): void {
    const options: SyncServiceOptions = {
      url: this.url,
      ...(this.clientId ? { clientId: this.clientId } : {}),
      ...(this.dbName ? { dbName: this.dbName } : {}),
      ...(this.token === undefined ? {} : { token: this.token }),
      // The service keeps only positive finite numbers of these; the rest take their defaults.
      heartbeatInterval: this.heartbeatInterval,
      backoffInitial: this.backoffInitial,
      backoffMax: this.backoffMax,
      ...(this.createWorker ? { createWorker: this.createWorker } : {}),
      ...(this.database ? { database: this.database } : {}),
    };
    const service = new WorkerSyncService(options);
    previous?.transferPendingTo(service);
    this.#service = service;
    this.#startedWith = this.#settings();
    this.#startedToken = this.token;
    this.#startedDatabase = this.database;
    this.#unsubscribe = SYNC_EVENT_TYPES.map((type) => service.on(type, (detail) => this.#forward(type, detail)));
    if (!this.database) this.#observations.attach(service);
    const ready = this.manual ? service.initialize() : service.connect();
    ready.catch(() => {
      // Reported through the service's `error` event and reflected in the state.
    });
  }

  /** Detaches the client and returns it, so a successor can take over its pending operations. */
  #stop(): WorkerSyncService | undefined {
    const service = this.#service;
    this.#startedWith = undefined;
    this.#startedDatabase = undefined;
    if (!service) return undefined;
    this.#service = undefined;
    this.#observations.detach();
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    return service;
  }

  /** Cleans a detached client up (after a successor took its pending promises) and shows its last state. */
  #retire(service: WorkerSyncService | undefined): void {
    if (!service) return;
    void service.cleanup();
    this.#reflect(service.getState());
  }

  #forward<K extends SyncEventType>(type: K, detail: SyncEventDetails[K]): void {
    if (type === 'state_change') {
      const { state } = detail as SyncEventDetails['state_change'];
      this.#reflect(state);
      for (const listener of [...this.#stateListeners]) listener(state);
    }
    const EventClass = EVENT_CLASSES[type] as new (detail: SyncEventDetails[K]) => Event;
    /** @ignore Every event is listed with `@fires` on the class. */
    this.dispatchEvent(new EventClass(detail));
  }

  #reflect(state: SyncState): void {
    this.setAttribute('status', state.status);
    this.toggleAttribute('connected', state.isConnected);
    this.toggleAttribute('syncing', state.syncing);
    this.setAttribute('last-lsn', state.lastLSN);
    this.setAttribute('pending', String(state.pendingOperations));
    this.setAttribute('role', state.role);
    this.#provider.setValue(state);
  }
}

// Types only: the listener overloads (lib.dom's pattern for elements with events of their own).
export interface SyncConnectionElement {
  addEventListener<K extends keyof SyncConnectionElementEventMap>(
    type: K,
    listener: (this: SyncConnectionElement, event: SyncConnectionElementEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof SyncConnectionElementEventMap>(
    type: K,
    listener: (this: SyncConnectionElement, event: SyncConnectionElementEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    'sync-connection': SyncConnectionElement;
  }
}
