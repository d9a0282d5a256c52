import { useRef, useState, type FormEvent } from 'react';
// Registers <sync-connection> before the first render, so that React sets its properties.
import { OperationRejectedError } from 'sync-connection';
// useEntities, and <sync-connection> in JSX with React 19's event props (onsync_completed, onerror...).
import { useEntities } from 'sync-connection/react';
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

const params = new URLSearchParams(location.search);
const url = params.get('url') ?? '/api/sync';
const dbName = params.get('db') ?? '';

const noteText = (data: unknown): string =>
  typeof data === 'object' && data !== null && 'text' in data && typeof data.text === 'string' ? data.text : '';

const createdAt = (note: SyncEntity): number =>
  typeof note.data === 'object' && note.data !== null && 'createdAt' in note.data && typeof note.data.createdAt === 'number'
    ? note.data.createdAt
    : 0;

// Outside the component: the same options on every render, so the live query is not restarted.
const NOTES_IN_ORDER = { sort: (a: SyncEntity, b: SyncEntity) => createdAt(a) - createdAt(b) };

/**
 * The operation that adds a note. A refused one has a type the reference server does not know
 * (it knows upsert, patch and delete) and declares the same effect: the note shows at once, and
 * is rolled back when the server refuses it.
 */
function addNote(text: string, refused: boolean): OperationInput {
  const payload = { entityType: 'note', entityId: crypto.randomUUID(), data: { text, createdAt: Date.now() } };
  return refused ? { type: 'add_note', payload, effects: [{ type: 'upsert', ...payload }] } : { type: 'upsert', payload };
}

export function App() {
  const sync = useRef<SyncConnectionElement>(null);
  // The notes as this page sees them, this tab's and other tabs' pending writes included.
  const notes = useEntities(sync, 'note', NOTES_IN_ORDER);
  const [status, setStatus] = useState('disconnected');
  const [clientId, setClientId] = useState('');
  const [lastLsn, setLastLsn] = useState('');
  const [lastError, setLastError] = useState('');
  const [rolledBack, setRolledBack] = useState('');

  function onConnected(event: ConnectedEvent) {
    setStatus('connected');
    setClientId(event.detail.clientId);
  }

  // In every tab: which notes a refused operation took back, and why.
  function onOperationError(event: OperationErrorEvent) {
    const { entities, message } = event.detail;
    const ids = entities.filter((entity) => entity.entityType === 'note').map((entity) => entity.entityId);
    setRolledBack(`Rolled back note ${ids.join(', ')}: ${message}`);
  }

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const text = String(new FormData(form).get('text') ?? '').trim();
    const refused = (event.nativeEvent as SubmitEvent).submitter?.getAttribute('name') === 'refused';
    form.reset();
    if (!text || !sync.current) return;
    try {
      await sync.current.queueOperation(addNote(text, refused));
    } catch (error) {
      // A refusal is told by operation_error, in every tab.
      if (!(error instanceof OperationRejectedError)) setLastError(error instanceof Error ? error.message : String(error));
    }
  }

  return (
    <main>
      <h1>Notes (React)</h1>
      <sync-connection
        ref={sync}
        url={url}
        db-name={dbName}
        onconnected={onConnected}
        onstate_change={(event: StateChangeEvent) => setStatus(event.detail.state.status)}
        onsync_completed={(event: SyncCompletedEvent) => setLastLsn(event.detail.lsn)}
        onoperation_error={onOperationError}
        onerror={(event: SyncErrorEvent) => setLastError(event.detail.message)}
      />
      <dl>
        <dt>Status</dt>
        <dd id="status">{status}</dd>
        <dt>Client id</dt>
        <dd id="client">{clientId}</dd>
        <dt>Last synced LSN</dt>
        <dd id="lsn">{lastLsn || '(none yet)'}</dd>
        <dt>Last error</dt>
        <dd id="error">{lastError}</dd>
      </dl>
      <form id="note-form" onSubmit={onSubmit}>
        <input name="text" placeholder="A new note" required autoComplete="off" />
        <button>Add</button>
        <button name="refused" value="yes">Add, refused by the server</button>
      </form>
      <p id="rolled-back" role="status">{rolledBack}</p>
      <ul id="notes">
        {notes.map((note) => (
          <li key={note.entityId} data-id={note.entityId} data-state={note.pending ? 'pending' : 'synced'}>
            {noteText(note.data)}
            {note.pending && <em> (pending)</em>}
          </li>
        ))}
      </ul>
    </main>
  );
}
