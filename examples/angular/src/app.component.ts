import { Component, computed, CUSTOM_ELEMENTS_SCHEMA, DOCUMENT, inject, signal } from '@angular/core';
import 'sync-connection';
import type {
  ChangesEvent,
  ConnectedEvent,
  StateChangeEvent,
  SyncCompletedEvent,
  SyncConnectionElement,
  SyncErrorEvent,
} from 'sync-connection';

interface Note {
  id: string;
  text: string;
  state: 'pending' | 'acknowledged' | 'failed' | 'synced';
}

type Notes = ReadonlyMap<string, Note>;

const noteText = (data: unknown): string =>
  typeof data === 'object' && data !== null && 'text' in data && typeof data.text === 'string' ? data.text : '';

/** A note the server sent: update the text of one we know (keeping its state), or add it. */
function received(notes: Notes, id: string, text: string): Notes {
  const known = notes.get(id);
  return new Map(notes).set(id, known ? { ...known, text } : { id, text, state: 'synced' });
}

function withState(notes: Notes, id: string, state: Note['state']): Notes {
  const note = notes.get(id);
  return note ? new Map(notes).set(id, { ...note, state }) : notes;
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
        (sync_completed)="onSyncCompleted($event, sync)"
        (changes)="onChanges($event)"
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
      </form>
      <ul id="notes">
        @for (note of list(); track note.id) {
          <li [attr.data-id]="note.id" [attr.data-state]="note.state">{{ note.text }} ({{ note.state }})</li>
        }
      </ul>
    </main>
  `,
})
export class AppComponent {
  readonly #params = new URLSearchParams(inject(DOCUMENT).location.search);
  readonly url = this.#params.get('url') ?? '/api/sync';
  readonly dbName = this.#params.get('db') ?? '';

  readonly status = signal('disconnected');
  readonly clientId = signal('');
  readonly lastLsn = signal('');
  readonly lastError = signal('');
  readonly notes = signal<Notes>(new Map());
  readonly list = computed(() => [...this.notes().values()]);

  onConnected(event: ConnectedEvent): void {
    this.status.set('connected');
    this.clientId.set(event.detail.clientId);
  }

  onStateChange(event: StateChangeEvent): void {
    this.status.set(event.detail.state.status);
  }

  async onSyncCompleted(event: SyncCompletedEvent, sync: SyncConnectionElement): Promise<void> {
    this.lastLsn.set(event.detail.lsn);
    const entities = await sync.getEntities('note');
    this.notes.update((notes) => entities.reduce((all, entity) => received(all, entity.entityId, noteText(entity.data)), notes));
  }

  onChanges(event: ChangesEvent): void {
    this.notes.update((notes) =>
      event.detail.changes.reduce((all, change) => {
        if (change.entityType !== 'note') return all;
        if (change.type === 'update') return received(all, change.entityId, noteText(change.data));
        const rest = new Map(all);
        rest.delete(change.entityId);
        return rest;
      }, notes),
    );
  }

  // `error` does not bubble; Angular's (error) listens on the element itself, where it fires.
  onError(event: SyncErrorEvent): void {
    this.lastError.set(event.detail.message);
  }

  async add(event: SubmitEvent, input: HTMLInputElement, sync: SyncConnectionElement): Promise<void> {
    event.preventDefault();
    const text = input.value.trim();
    input.value = '';
    if (!text) return;
    const id = crypto.randomUUID();
    this.notes.update((notes) => new Map(notes).set(id, { id, text, state: 'pending' }));
    try {
      await sync.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: id, data: { text } } });
      this.notes.update((notes) => withState(notes, id, 'acknowledged'));
    } catch (error) {
      this.notes.update((notes) => withState(notes, id, 'failed'));
      this.lastError.set(error instanceof Error ? error.message : String(error));
    }
  }
}
