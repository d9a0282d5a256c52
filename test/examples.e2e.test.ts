import { expect } from '@open-wc/testing';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

/**
 * The same notes app in plain HTML, Vue, React and Angular (examples/), each loaded as built
 * (`npm run build && node scripts/build-examples.mjs`) in a same-origin iframe, against a real
 * reference server. The tests drive and read only the page: `#status`, `#client`, `#lsn`, `#error`,
 * the form `#note-form` and `#notes li[data-id][data-state]`.
 */
const EXAMPLES = [
  { name: 'plain HTML', path: '/examples/plain/index.html' },
  { name: 'Vue', path: '/examples/vue/dist/index.html' },
  { name: 'React', path: '/examples/react/dist/index.html' },
  { name: 'Angular', path: '/examples/angular/dist/index.html' },
] as const;

type FrameWindow = Window & typeof globalThis;

interface App {
  frame: HTMLIFrameElement;
  window: FrameWindow;
  document: Document;
}

const textOf = (app: App, selector: string): string => app.document.querySelector(selector)?.textContent?.trim() ?? '';

function noteItem(app: App, text: string): HTMLLIElement | undefined {
  return [...app.document.querySelectorAll<HTMLLIElement>('#notes li')].find((li) => li.textContent?.includes(text));
}

/** Types into the form's text field the way a user does (an `input` event), then submits it. */
function submitNote(app: App, text: string): void {
  const input = app.document.querySelector<HTMLInputElement>('#note-form input[name="text"]');
  const form = app.document.querySelector<HTMLFormElement>('#note-form');
  if (!input || !form) throw new Error('the app has no #note-form with a text input');
  // The native setter, so that React's value tracking sees a change.
  Object.getOwnPropertyDescriptor(app.window.HTMLInputElement.prototype, 'value')?.set?.call(input, text);
  input.dispatchEvent(new app.window.Event('input', { bubbles: true }));
  form.requestSubmit();
}

/** Every `data-state` the note with `text` shows, in order, from now on. */
function watchStates(app: App, text: string): { states: string[]; stop: () => void } {
  const states: string[] = [];
  const observer = new app.window.MutationObserver(() => {
    const state = noteItem(app, text)?.dataset.state;
    if (state && states.at(-1) !== state) states.push(state);
  });
  observer.observe(app.document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  return { states, stop: () => observer.disconnect() };
}

for (const example of EXAMPLES) {
  describe(`the ${example.name} example`, () => {
    const server = useReferenceServer();
    const apps: App[] = [];
    const databases: string[] = [];

    async function open(url: string): Promise<App> {
      const db = uniqueDbName();
      databases.push(db);
      const frame = document.createElement('iframe');
      frame.src = `${example.path}?url=${encodeURIComponent(url)}&db=${encodeURIComponent(db)}`;
      document.body.append(frame);
      await waitFor(() => frame.contentDocument?.querySelector('#note-form') != null, `${example.path} to render`, 10_000);
      const app = { frame, window: frame.contentWindow as FrameWindow, document: frame.contentDocument! };
      apps.push(app);
      return app;
    }

    afterEach(async () => {
      for (const app of apps.splice(0)) app.frame.remove();
      await Promise.all(databases.splice(0).map(deleteDatabase));
    });

    it('connects and shows the notes written before it opened, with the LSN of the catch-up', async () => {
      const lsn = await server.post([
        { type: 'update', entityType: 'note', entityId: 'before', data: { text: 'written before the page opened' } },
      ]);
      const app = await open(server.wsUrl);
      await waitFor(() => textOf(app, '#status') === 'connected', 'the status "connected"');
      await waitFor(() => textOf(app, '#client') !== '', 'the client id from the connected event');
      await waitFor(() => textOf(app, '#lsn') === lsn, `the LSN ${lsn} from sync_completed`);
      await waitFor(() => noteItem(app, 'written before the page opened') !== undefined, 'the note from the catch-up');
      expect(textOf(app, '#error')).to.equal('');
    });

    it('shows a submitted note pending, then acknowledged, and the server has it', async () => {
      const app = await open(server.wsUrl);
      await waitFor(() => textOf(app, '#status') === 'connected', 'the status "connected"');
      const text = `note from ${example.name} ${crypto.randomUUID()}`;
      const watch = watchStates(app, text);
      submitNote(app, text);
      await waitFor(() => noteItem(app, text)?.dataset.state === 'acknowledged', 'the note to be acknowledged');
      watch.stop();
      expect(watch.states[0]).to.equal('pending');
      expect(watch.states.at(-1)).to.equal('acknowledged');

      const id = noteItem(app, text)?.dataset.id;
      const { entities } = await server.entities();
      expect(entities.find((entity) => entity.entityId === id)).to.deep.include({ entityType: 'note', data: { text } });
    });

    it('shows a note another client wrote while it is open', async () => {
      const app = await open(server.wsUrl);
      await waitFor(() => textOf(app, '#status') === 'connected', 'the status "connected"');
      await server.post([{ type: 'update', entityType: 'note', entityId: 'elsewhere', data: { text: 'written elsewhere' } }]);
      await waitFor(() => noteItem(app, 'written elsewhere') !== undefined, 'the note written elsewhere');
      expect(noteItem(app, 'written elsewhere')?.dataset).to.include({ id: 'elsewhere', state: 'synced' });
    });

    it("shows the error event's message for a url the element refuses", async () => {
      const app = await open('ftp://x');
      await waitFor(() => textOf(app, '#error') !== '', 'an error message');
      expect(textOf(app, '#error')).to.contain('"ftp:" is refused');
    });
  });
}
