import { expect } from '@open-wc/testing';
import { createApp, defineComponent, effectScope, isProxy, isReadonly, nextTick, ref, shallowRef, useTemplateRef, watch, type App, type EffectScope } from 'vue';
import type { SyncEntity } from '../../src/client/pending-layer.ts';
import type { EntitySource } from '../../src/frameworks/live-rows.ts';
import { useEntities } from '../../src/frameworks/vue-entities.ts';
import { deleteDatabase, uniqueDbName } from '../helpers/e2e.ts';
import { notes, useReferenceServer } from '../helpers/reference-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { counted, ids, useClients, useElements } from './helpers.ts';
import '../../src/index.ts';

/**
 * `useEntities` (sync-connection/vue) in Vue's browser build, in a real browser, on clients and
 * `<sync-connection>` elements of real reference servers.
 */
describe('useEntities for Vue', () => {
  const server = useReferenceServer();
  const other = useReferenceServer();
  const client = useClients(server);
  const element = useElements();
  const scopes: EffectScope[] = [];
  const apps: App[] = [];
  const cleanups: (() => Promise<void> | void)[] = [];

  afterEach(async () => {
    for (const scope of scopes.splice(0)) scope.stop();
    for (const app of apps.splice(0)) app.unmount();
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  /** Runs `setup` in an effect scope the test can stop. */
  function inScope<T>(setup: () => T): { value: T; scope: EffectScope } {
    const scope = effectScope();
    scopes.push(scope);
    return { value: scope.run(setup)!, scope };
  }

  /** Every value the ref takes, as it is set. */
  function record(rows: { readonly value: readonly SyncEntity[] }): (readonly SyncEntity[])[] {
    const values: (readonly SyncEntity[])[] = [];
    watch(() => rows.value, (value) => values.push(value), { flush: 'sync' });
    return values;
  }

  it('holds the rows, a new frozen array once per change, read-only; rows are not made reactive and unchanged ones keep their identity', async () => {
    await server.post(notes(2));
    const service = client();
    void service.connect();
    const { value: rows } = inScope(() => useEntities(service, 'note'));
    const values = inScope(() => record(rows)).value;
    await waitFor(() => rows.value.length === 2, 'the two notes');
    const before = rows.value;
    expect(isReadonly(rows)).to.equal(true);
    expect(Object.isFrozen(before)).to.equal(true);
    expect(isProxy(before) || isProxy(before[0])).to.equal(false);
    const warnings: unknown[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => warnings.push(args[0]);
    try {
      (rows as { value: unknown }).value = [];
    } finally {
      console.warn = warn;
    }
    expect(rows.value).to.equal(before);
    expect(String(warnings[0])).to.match(/target is readonly/);

    const calls = values.length;
    await server.post([{ type: 'update', entityType: 'note', entityId: 'n1', data: { text: 'changed' } }]);
    await waitFor(() => (rows.value[1]?.data as { text?: string } | undefined)?.text === 'changed', 'the change');
    expect(values.length - calls, 'one new value for one change').to.equal(1);
    expect(rows.value[0]).to.equal(before[0]);
  });

  it('follows the element it is given: starts when there is one, moves to another (its rows start empty), stops when it is gone', async () => {
    await server.post([{ type: 'update', entityType: 'note', entityId: 'one', data: {} }]);
    await other.post([{ type: 'update', entityType: 'note', entityId: 'two', data: {} }]);
    const first = counted(element(server.wsUrl));
    const second = counted(element(other.wsUrl));
    const source = shallowRef<EntitySource | null>(null);
    const { value: rows } = inScope(() => useEntities(source, 'note'));
    const values = inScope(() => record(rows)).value;
    expect(rows.value).to.deep.equal([]);

    source.value = first;
    await waitFor(() => ids(rows.value).join() === 'one', "the first element's note");
    const moved = values.length;
    source.value = second;
    await waitFor(() => ids(rows.value).join() === 'two', "the second element's note");
    expect(values[moved], 'empty at once').to.deep.equal([]);
    expect(values.slice(moved).some((value) => ids(value).includes('one')), "the first element's note after the move").to.equal(false);
    await waitFor(() => first.stopped === 1, 'the query on the first element stopped');

    source.value = null;
    await nextTick();
    expect(rows.value).to.deep.equal([]);
    await waitFor(() => second.stopped === 1, 'the query on the second element stopped');
    expect([first.started, second.started]).to.deep.equal([1, 1]);
  });

  it('follows a template ref: the rows of an element mounted later, none once it is removed', async () => {
    await server.post(notes(1));
    const db = uniqueDbName();
    cleanups.push(() => deleteDatabase(db));
    const show = ref(false);
    let rows!: { readonly value: readonly SyncEntity[] };
    const Notes = defineComponent({
      setup() {
        rows = useEntities(useTemplateRef<EntitySource>('sync'), 'note');
        return { show, rows, url: server.wsUrl, db };
      },
      template: `<sync-connection v-if="show" ref="sync" :url="url" :db-name="db"></sync-connection>
        <ul><li v-for="row in rows" :key="row.entityId">{{ row.entityId }}</li></ul>`,
    });
    const app = createApp(Notes);
    app.config.compilerOptions.isCustomElement = (tag) => tag === 'sync-connection';
    apps.push(app);
    const host = document.createElement('div');
    document.body.append(host);
    cleanups.push(() => host.remove());
    app.mount(host);
    expect(host.querySelectorAll('li')).to.have.length(0);

    show.value = true;
    await waitFor(() => host.querySelector('li')?.textContent === 'n0', 'the note, rendered');
    show.value = false;
    await waitFor(() => rows.value.length === 0 && host.querySelectorAll('li').length === 0, 'no rows once the element is gone');
  });

  it('stops its query when its scope is disposed or its component unmounted', async () => {
    await server.post(notes(1));
    const service = client();
    void service.connect();
    const { value: rows, scope } = inScope(() => useEntities(service, 'note'));
    await waitFor(() => rows.value.length === 1, 'the note');
    scope.stop();
    await waitFor(() => service.observers === 0, 'no live query after the scope is disposed');

    const app = createApp(defineComponent({
      setup: () => ({ rows: useEntities(service, 'note') }),
      template: '<p>{{ rows.length }}</p>',
    }));
    const host = document.createElement('div');
    app.mount(host);
    await waitFor(() => host.textContent === '1' && service.observers === 1, 'the component, rendered');
    app.unmount();
    await waitFor(() => service.observers === 0, 'no live query after the component unmounted');
  });

  it('restarts its query when the type or an option changes (refs or getters), keeping rows of the same type until then', async () => {
    await server.post([...notes(3), { type: 'update', entityType: 'task', entityId: 't0', data: {} }]);
    const service = client();
    void service.connect();
    const source = counted(service);
    const limit = ref(1);
    const type = ref('note');
    const { value: rows } = inScope(() => useEntities(source, type, () => ({ limit: limit.value })));
    const values = inScope(() => record(rows)).value;
    await waitFor(() => rows.value.length === 1, 'one note');
    const first = rows.value[0];

    let seen = values.length;
    limit.value = 2;
    await waitFor(() => rows.value.length === 2, 'two notes');
    expect(values.slice(seen).every((value) => value.length > 0), 'no empty rows while the query restarted').to.equal(true);
    expect(rows.value[0]).to.equal(first);

    seen = values.length;
    type.value = 'task';
    await waitFor(() => ids(rows.value).join() === 't0', 'the task');
    expect(values.slice(seen).map(ids)).to.deep.equal([[], ['t0']]);
    expect(source.started).to.equal(3);
    await waitFor(() => service.observers === 1, 'only the last query left');
  });
});
