// The JIT compiler first: the components below are compiled in the browser.
import '@angular/compiler';
import { expect } from '@open-wc/testing';
import {
  Component,
  createComponent,
  createEnvironmentInjector,
  CUSTOM_ELEMENTS_SCHEMA,
  ElementRef,
  provideZonelessChangeDetection,
  runInInjectionContext,
  signal,
  viewChild,
  ViewChild,
  type ApplicationRef,
  type EnvironmentInjector,
} from '@angular/core';
import { createApplication } from '@angular/platform-browser';
import type { SyncEntity } from '../../src/client/pending-layer.ts';
import { injectEntities } from '../../src/frameworks/angular-entities.ts';
import type { EntitySource } from '../../src/frameworks/live-rows.ts';
import { deleteDatabase, uniqueDbName } from '../helpers/e2e.ts';
import { notes, useReferenceServer } from '../helpers/reference-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { counted, ids, useClients, useElements } from './helpers.ts';
import '../../src/index.ts';

/**
 * `injectEntities` (sync-connection/angular) in a zoneless Angular application, in a real
 * browser, on clients and `<sync-connection>` elements of real reference servers.
 */
describe('injectEntities for Angular', () => {
  const server = useReferenceServer();
  const other = useReferenceServer();
  const client = useClients(server);
  const element = useElements();
  let app: ApplicationRef;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    app = await createApplication({ providers: [provideZonelessChangeDetection()] });
  });

  after(() => app.destroy());

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** An injector of its own, destroyed after the test unless the test does it. */
  function scope(): EnvironmentInjector {
    const injector = createEnvironmentInjector([], app.injector);
    cleanups.push(() => { if (!injector.destroyed) injector.destroy(); });
    return injector;
  }

  it('gives a signal of the rows, a new frozen array per change in which unchanged rows keep their identity; stops when its injector is destroyed', async () => {
    await server.post(notes(2));
    const service = client();
    void service.connect();
    const injector = scope();
    const rows = runInInjectionContext(injector, () => injectEntities(service, 'note'));
    await waitFor(() => rows().length === 2, 'the two notes');
    const before = rows();
    expect(Object.isFrozen(before)).to.equal(true);
    expect('set' in rows, 'read-only').to.equal(false);

    await server.post([{ type: 'update', entityType: 'note', entityId: 'n1', data: { text: 'changed' } }]);
    await waitFor(() => (rows()[1]?.data as { text?: string } | undefined)?.text === 'changed', 'the change');
    expect(rows()[0]).to.equal(before[0]);

    injector.destroy();
    await waitFor(() => service.observers === 0, 'no live query once the injector is destroyed');
  });

  it('needs an injection context or an injector, and says so', async () => {
    await server.post(notes(1));
    const service = client();
    void service.connect();
    expect(() => injectEntities(service, 'note')).to.throw(/NG0203.*injectEntities/s);
    expect(service.observers).to.equal(0);

    const injector = scope();
    const rows = injectEntities(service, 'note', { injector, limit: 1 });
    await waitFor(() => ids(rows()).join() === 'n0', 'the note');
    injector.destroy();
    await waitFor(() => service.observers === 0, 'no live query once the given injector is destroyed');
  });

  it('follows a signal of the element (an ElementRef, as viewChild gives): starts when there is one, moves to another (its rows start empty), stops when it is gone', async () => {
    await server.post([{ type: 'update', entityType: 'note', entityId: 'one', data: {} }]);
    await other.post([{ type: 'update', entityType: 'note', entityId: 'two', data: {} }]);
    const first = counted(element(server.wsUrl));
    const second = counted(element(other.wsUrl));
    const source = signal<ElementRef<EntitySource> | undefined>(undefined);
    const rows = runInInjectionContext(scope(), () => injectEntities(source, 'note'));
    expect(rows()).to.deep.equal([]);

    source.set(new ElementRef(first));
    await waitFor(() => ids(rows()).join() === 'one', "the first element's note");
    source.set(new ElementRef(second));
    await waitFor(() => first.stopped === 1, 'the query on the first element stopped');
    expect(ids(rows())).not.to.include('one');
    await waitFor(() => ids(rows()).join() === 'two', "the second element's note");

    source.set(undefined);
    await waitFor(() => second.stopped === 1 && rows().length === 0, 'the query on the second element stopped, no rows');
    expect([first.started, second.started]).to.deep.equal([1, 1]);
  });

  it("in a component: follows its view query's element, and stops with the component (its DestroyRef)", async () => {
    await server.post(notes(1));
    const db = uniqueDbName();
    cleanups.push(() => deleteDatabase(db));
    const service = client();
    void service.connect();

    class NotesView {
      readonly url = server.wsUrl;
      readonly db = db;
      readonly sync = viewChild<ElementRef<EntitySource>>('sync');
      readonly notes = injectEntities(this.sync, 'note');
      readonly sameNotes = injectEntities(service, 'note');
    }
    // What the Angular CLI's compiler writes for `viewChild()`; this test compiles in the browser.
    ViewChild('sync', { isSignal: true } as never)(NotesView.prototype, 'sync');
    Component({
      selector: 'notes-view',
      schemas: [CUSTOM_ELEMENTS_SCHEMA],
      template: `<sync-connection #sync [url]="url" [dbName]="db"></sync-connection>
        <ul>@for (row of notes(); track row.entityId) {<li>{{ row.entityId }}</li>}</ul>
        <p>{{ sameNotes().length }}</p>`,
    })(NotesView);

    const host = document.createElement('div');
    document.body.append(host);
    cleanups.push(() => host.remove());
    const view = createComponent(NotesView, { environmentInjector: app.injector, hostElement: host });
    app.attachView(view.hostView);
    await waitFor(() => host.querySelector('li')?.textContent === 'n0' && host.querySelector('p')?.textContent === '1', 'the note, rendered');
    expect(service.observers).to.equal(1);

    view.destroy();
    await waitFor(() => service.observers === 0, 'no live query once the component is destroyed');
  });
});
