import { expect } from '@open-wc/testing';
import { createElement, StrictMode } from 'react';
import { flushSync } from 'react-dom';
import { createRoot, type Root } from 'react-dom/client';
import type { ObserveOptions } from '../../src/client/live-query.ts';
import type { SyncEntity } from '../../src/client/pending-layer.ts';
import { useEntities } from '../../src/frameworks/react-entities.ts';
import type { EntitySource } from '../../src/frameworks/live-rows.ts';
import { notes, useReferenceServer } from '../helpers/reference-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { counted, ids, useClients } from './helpers.ts';

/**
 * `useEntities` (sync-connection/react) in React's development build, in a real browser, on a
 * client of a real reference server. Every render's rows are recorded.
 */
describe('useEntities for React', () => {
  const server = useReferenceServer();
  const client = useClients(server);
  const roots: Root[] = [];
  let renders: (readonly SyncEntity[])[];

  beforeEach(() => {
    renders = [];
  });

  afterEach(() => {
    for (const root of roots.splice(0)) root.unmount();
  });

  interface Props {
    source: EntitySource | null;
    entityType: string;
    options?: ObserveOptions;
    /** Changes nothing the hook reads: a render for another reason. */
    label?: string;
  }

  function Notes({ source, entityType, options, label }: Props) {
    const rows = useEntities(source, entityType, options);
    renders.push(rows);
    return createElement('ul', { title: label }, rows.map((row) => createElement('li', { key: row.entityId }, row.entityId)));
  }

  /** Renders `<Notes>` (in StrictMode unless told otherwise); returns the function that renders it again with other props. */
  function mount(props: Props, { strict = true } = {}): (next: Props) => void {
    const root = createRoot(document.createElement('div'));
    roots.push(root);
    const render = (next: Props) => {
      const notesElement = createElement(Notes, next);
      flushSync(() => root.render(strict ? createElement(StrictMode, null, notesElement) : notesElement));
    };
    render(props);
    return render;
  }

  const last = () => renders.at(-1);

  it('renders the rows, then again once per change; between changes every render gets the same array, and an unchanged row keeps its identity', async () => {
    await server.post(notes(2));
    const service = client();
    void service.connect();
    const render = mount({ source: service, entityType: 'note' });
    await waitFor(() => ids(last()).length === 2, 'the two notes');
    const before = last()!;
    expect(Object.isFrozen(before)).to.equal(true);

    render({ source: service, entityType: 'note', label: 'rendered again' });
    expect(last()).to.equal(before);

    await server.post([{ type: 'update', entityType: 'note', entityId: 'n1', data: { text: 'changed' } }]);
    await waitFor(() => (last()?.[1]?.data as { text?: string } | undefined)?.text === 'changed', 'the change');
    const after = last()!;
    expect(after).not.to.equal(before);
    expect(after[0]).to.equal(before[0]);
    expect(ids(after)).to.deep.equal(['n0', 'n1']);
  });

  it('shows a write at once marked pending, then unmarked once the server has it', async () => {
    const service = client();
    await service.connect();
    mount({ source: service, entityType: 'note' });
    const written = service.queueOperation({ type: 'upsert', payload: { entityType: 'note', entityId: 'mine', data: { text: 'mine' } } });
    await waitFor(() => last()?.[0]?.pending === true, 'the write, pending');
    await written;
    await waitFor(() => last()?.[0]?.entityId === 'mine' && last()?.[0]?.pending === undefined, 'the write, no longer pending');
  });

  it("StrictMode's subscribe, unsubscribe, subscribe shows the rows and leaves one live query; unmounting leaves none", async () => {
    await server.post(notes(1));
    const service = client();
    void service.connect();
    const source = counted(service);
    mount({ source, entityType: 'note' });
    await waitFor(() => ids(last()).length === 1, 'the note');
    expect(source.started).to.equal(2);
    expect(source.stopped).to.equal(1);
    await waitFor(() => service.observers === 1, 'one live query on the client');

    roots.pop()!.unmount();
    await waitFor(() => service.observers === 0, 'no live query on the client');
    expect(source.stopped).to.equal(2);
  });

  it('restarts its query when the type or an option changes, keeping the rows (and their identity) of the same type; equal options written inline restart nothing', async () => {
    await server.post([...notes(3), { type: 'update', entityType: 'task', entityId: 't0', data: {} }]);
    const service = client();
    void service.connect();
    const source = counted(service);
    const render = mount({ source, entityType: 'note', options: { limit: 1 } }, { strict: false });
    await waitFor(() => ids(last()).length === 1, 'one note');
    expect(source.started).to.equal(1);

    render({ source, entityType: 'note', options: { limit: 1 } });
    expect(source.started, 'a new but equal options object').to.equal(1);

    const seen = renders.length;
    const first = last()![0];
    render({ source, entityType: 'note', options: { limit: 2 } });
    await waitFor(() => ids(last()).length === 2, 'two notes');
    expect(source.started).to.equal(2);
    expect(last()![0], 'the restarted query reuses the records in memory').to.equal(first);
    expect(renders.slice(seen).every((rows) => rows.length > 0), 'no render without rows while the query restarted').to.equal(true);

    const beforeTask = renders.length;
    render({ source, entityType: 'task', options: { limit: 2 } });
    await waitFor(() => ids(last()).join() === 't0', 'the task');
    expect(renders.slice(beforeTask).every((rows) => rows.every((row) => row.entityType === 'task')), 'no note shown as a task').to.equal(true);
    await waitFor(() => service.observers === 1, 'only the last query left');
    expect(source.stopped).to.equal(2);
  });

  it('observes nothing while the source is empty, and starts when it is given', async () => {
    await server.post(notes(1));
    const service = client();
    void service.connect();
    const source = counted(service);
    const render = mount({ source: null, entityType: 'note' });
    expect(last()).to.deep.equal([]);
    expect(source.started).to.equal(0);
    render({ source, entityType: 'note' });
    await waitFor(() => ids(last()).join() === 'n0', 'the note');
  });
});
