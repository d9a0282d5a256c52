import { useRef, useState, type FormEvent } from 'react';
import 'sync-connection';
// <sync-connection> in JSX, with React 19's event props (onsync_completed, onerror...).
import type {} from 'sync-connection/react';
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

const params = new URLSearchParams(location.search);
const url = params.get('url') ?? '/api/sync';
const dbName = params.get('db') ?? '';

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

export function App() {
  const sync = useRef<SyncConnectionElement>(null);
  const [status, setStatus] = useState('disconnected');
  const [clientId, setClientId] = useState('');
  const [lastLsn, setLastLsn] = useState('');
  const [lastError, setLastError] = useState('');
  const [notes, setNotes] = useState<Notes>(new Map());

  function onConnected(event: ConnectedEvent) {
    setStatus('connected');
    setClientId(event.detail.clientId);
  }

  async function onSyncCompleted(event: SyncCompletedEvent) {
    setLastLsn(event.detail.lsn);
    const entities = (await sync.current?.getEntities('note')) ?? [];
    setNotes((notes) => entities.reduce((all, entity) => received(all, entity.entityId, noteText(entity.data)), notes));
  }

  function onChanges(event: ChangesEvent) {
    setNotes((notes) =>
      event.detail.changes.reduce((all, change) => {
        if (change.entityType !== 'note') return all;
        if (change.type === 'update') return received(all, change.entityId, noteText(change.data));
        const rest = new Map(all);
        rest.delete(change.entityId);
        return rest;
      }, notes),
    );
  }

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const text = String(new FormData(form).get('text') ?? '').trim();
    form.reset();
    if (!text || !sync.current) return;
    const id = crypto.randomUUID();
    setNotes((notes) => new Map(notes).set(id, { id, text, state: 'pending' }));
    try {
      await sync.current.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: id, data: { text } } });
      setNotes((notes) => withState(notes, id, 'acknowledged'));
    } catch (error) {
      setNotes((notes) => withState(notes, id, 'failed'));
      setLastError(error instanceof Error ? error.message : String(error));
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
        onsync_completed={onSyncCompleted}
        onchanges={onChanges}
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
      {/* onSubmit, not a form action: an action's updates show only when it ends, hiding "pending". */}
      <form id="note-form" onSubmit={onSubmit}>
        <input name="text" placeholder="A new note" required autoComplete="off" />
        <button>Add</button>
      </form>
      <ul id="notes">
        {[...notes.values()].map((note) => (
          <li key={note.id} data-id={note.id} data-state={note.state}>
            {note.text} ({note.state})
          </li>
        ))}
      </ul>
    </main>
  );
}
