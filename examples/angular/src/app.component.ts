import { Component, CUSTOM_ELEMENTS_SCHEMA, DOCUMENT, ElementRef, inject, signal, ViewChild } from '@angular/core';
import { OperationRejectedError } from 'sync-connection';
import { injectEntities } from 'sync-connection/angular';
import type {
  ConnectedEvent,
  OperationErrorEvent,
  OperationInput,
  StateChangeEvent,
  SyncCompletedEvent,
  SyncConnectionElement,
  SyncEntity,
  SyncErrorEvent,
} from 'sync-connection';

const noteText = (data: unknown): string =>
  typeof data === 'object' && data !== null && 'text' in data && typeof data.text === 'string' ? data.text : '';

const createdAt = (note: SyncEntity): number =>
  typeof note.data === 'object' && note.data !== null && 'createdAt' in note.data && typeof note.data.createdAt === 'number'
    ? note.data.createdAt
    : 0;

/**
 * The operation that adds a note. A refused one has a type the reference server does not know
 * (it knows upsert, patch and delete) and declares the same effect: the note shows at once, and
 * is rolled back when the server refuses it.
 */
function addNote(text: string, refused: boolean): OperationInput {
  const payload = { entityType: 'note', entityId: crypto.randomUUID(), data: { text, createdAt: Date.now() } };
  return refused ? { type: 'add_note', payload, effects: [{ type: 'upsert', ...payload }] } : { type: 'upsert', payload };
}

@Component({
  selector: 'app-root',
  // <sync-connection> is a custom element: Angular sets its properties and listens to its events.
  schemas: [CUSTOM_ELEMENTS_SCHEMA],
  template: `
    <main>
      <h1>Notes (Angular)</h1>
      <sync-connection
        #sync
        [url]="url"
        [dbName]="dbName"
        (connected)="onConnected($event)"
        (state_change)="onStateChange($event)"
        (sync_completed)="onSyncCompleted($event)"
        (operation_error)="onOperationError($event)"
        (error)="onError($event)"
      ></sync-connection>
      <dl>
        <dt>Status</dt><dd id="status">{{ status() }}</dd>
        <dt>Client id</dt><dd id="client">{{ clientId() }}</dd>
        <dt>Last synced LSN</dt><dd id="lsn">{{ lastLsn() || '(none yet)' }}</dd>
        <dt>Last error</dt><dd id="error">{{ lastError() }}</dd>
      </dl>
      <form id="note-form" (submit)="add($event, text, sync)">
        <input #text name="text" placeholder="A new note" required autocomplete="off" />
        <button>Add</button>
        <button name="refused" value="yes">Add, refused by the server</button>
      </form>
      <p id="rolled-back" role="status">{{ rolledBack() }}</p>
      <ul id="notes">
        @for (note of notes(); track note.entityId) {
          <li [attr.data-id]="note.entityId" [attr.data-state]="note.pending ? 'pending' : 'synced'">
            {{ noteText(note.data) }}@if (note.pending) {<em> (pending)</em>}
          </li>
        }
      </ul>
    </main>
  `,
})
export class AppComponent {
  readonly #params = new URLSearchParams(inject(DOCUMENT).location.search);
  readonly url = this.#params.get('url') ?? '/api/sync';
  readonly dbName = this.#params.get('db') ?? '';
  readonly noteText = noteText;

  /**
   * The element, once the view has it. An Angular CLI (AOT) app writes
   * `viewChild<ElementRef<SyncConnectionElement>>('sync')`; this example compiles in the browser
   * (JIT), which sees signal queries only after a build step it does not have, so a decorated
   * query fills the signal.
   */
  readonly sync = signal<ElementRef<SyncConnectionElement> | undefined>(undefined);
  @ViewChild('sync', { static: true }) set syncElement(element: ElementRef<SyncConnectionElement>) {
    this.sync.set(element);
  }
  /** The notes as this page sees them, this tab's and other tabs' pending writes included. */
  readonly notes = injectEntities(this.sync, 'note', { sort: (a, b) => createdAt(a) - createdAt(b) });
  readonly status = signal('disconnected');
  readonly clientId = signal('');
  readonly lastLsn = signal('');
  readonly lastError = signal('');
  readonly rolledBack = signal('');

  onConnected(event: ConnectedEvent): void {
    this.status.set('connected');
    this.clientId.set(event.detail.clientId);
  }

  onStateChange(event: StateChangeEvent): void {
    this.status.set(event.detail.state.status);
  }

  onSyncCompleted(event: SyncCompletedEvent): void {
    this.lastLsn.set(event.detail.lsn);
  }

  // In every tab: which notes a refused operation took back, and why.
  onOperationError(event: OperationErrorEvent): void {
    const { entities, message } = event.detail;
    const ids = entities.filter((entity) => entity.entityType === 'note').map((entity) => entity.entityId);
    this.rolledBack.set(`Rolled back note ${ids.join(', ')}: ${message}`);
  }

  // `error` does not bubble; Angular's (error) listens on the element itself, where it fires.
  onError(event: SyncErrorEvent): void {
    this.lastError.set(event.detail.message);
  }

  async add(event: SubmitEvent, input: HTMLInputElement, sync: SyncConnectionElement): Promise<void> {
    event.preventDefault();
    const text = input.value.trim();
    const refused = event.submitter?.getAttribute('name') === 'refused';
    input.value = '';
    if (!text) return;
    try {
      await sync.queueOperation(addNote(text, refused));
    } catch (error) {
      // A refusal is told by operation_error, in every tab.
      if (!(error instanceof OperationRejectedError)) this.lastError.set(error instanceof Error ? error.message : String(error));
    }
  }
}
