import { expect } from '@open-wc/testing';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

/**
 * The demo page (index.html, what `npm start` serves) in same-origin iframes, each one a tab,
 * pointed at a real reference server with `?url=` and at a database with `?db=`. The tests drive
 * and read only the page: `#status`, `#role`, the form `#add` (its submit button, and the one
 * named `refused`), `#rolled-back` and `#notes li[data-id][data-state]`.
 */
describe('the demo page', () => {
  const server = useReferenceServer();
  const frames: HTMLIFrameElement[] = [];
  const databases: string[] = [];

  afterEach(async () => {
    for (const frame of frames.splice(0)) frame.remove();
    await Promise.all(databases.splice(0).map(deleteDatabase));
  });

  const documentOf = (frame: HTMLIFrameElement): Document => frame.contentDocument!;
  const textOf = (frame: HTMLIFrameElement, selector: string): string => documentOf(frame).querySelector(selector)?.textContent?.trim() ?? '';

  function noteItem(frame: HTMLIFrameElement, text: string): HTMLLIElement | undefined {
    return [...documentOf(frame).querySelectorAll<HTMLLIElement>('#notes li')].find((li) => li.querySelector('span')?.textContent === text);
  }

  /** Loads the demo in a new iframe on database `db` and waits until its script has run. */
  async function open(db: string): Promise<HTMLIFrameElement> {
    const frame = document.createElement('iframe');
    frame.src = `/index.html?url=${encodeURIComponent(server.wsUrl)}&db=${encodeURIComponent(db)}`;
    frames.push(frame);
    document.body.append(frame);
    await waitFor(() => frame.contentDocument?.querySelector('sync-connection')?.hasAttribute('url') === true, 'the demo to start');
    return frame;
  }

  async function reload(frame: HTMLIFrameElement): Promise<void> {
    const loaded = new Promise((resolve) => frame.addEventListener('load', resolve, { once: true }));
    frame.contentWindow!.location.reload();
    await loaded;
    await waitFor(() => frame.contentDocument?.querySelector('sync-connection')?.hasAttribute('url') === true, 'the reloaded demo to start');
  }

  /** Two tabs of the demo on one new database, both connected. */
  async function twoTabs(): Promise<[HTMLIFrameElement, HTMLIFrameElement]> {
    const db = uniqueDbName();
    databases.push(db);
    const first = await open(db);
    const second = await open(db);
    await waitFor(() => textOf(first, '#status') === 'connected' && textOf(second, '#status') === 'connected', 'both tabs connected');
    return [first, second];
  }

  function submit(frame: HTMLIFrameElement, text: string, button: 'add' | 'refused' = 'add'): void {
    const doc = documentOf(frame);
    doc.querySelector<HTMLInputElement>('#text')!.value = text;
    const submitter = doc.querySelector<HTMLButtonElement>(button === 'add' ? '#add button' : '#add button[name="refused"]')!;
    doc.querySelector<HTMLFormElement>('#add')!.requestSubmit(submitter);
  }

  it('shows a note added while the server is stopped at once, pending, in this tab, another tab and after a reload; sends it once the server is back', async () => {
    const [first, second] = await twoTabs();

    await server.stop();
    await waitFor(() => textOf(first, '#status') !== 'connected' && textOf(second, '#status') !== 'connected', 'both tabs to see the server gone');
    submit(first, 'written offline');
    await waitFor(() => noteItem(first, 'written offline')?.dataset.state === 'pending', 'the note, pending, in the tab that wrote it');
    await waitFor(() => noteItem(second, 'written offline')?.dataset.state === 'pending', 'the note, pending, in the other tab');
    await reload(first);
    await waitFor(() => noteItem(first, 'written offline')?.dataset.state === 'pending', 'the note, pending, after a reload');
    expect(textOf(first, '#status')).not.to.equal('connected');

    await server.startAgain();
    await waitFor(() => noteItem(first, 'written offline')?.dataset.state === 'synced', 'the note synced in the reloaded tab', 15_000);
    await waitFor(() => noteItem(second, 'written offline')?.dataset.state === 'synced', 'the note synced in the other tab');
    const { entities } = await server.entities();
    const stored = entities.filter((entity) => (entity.data as { text?: unknown }).text === 'written offline');
    expect(stored).to.have.length(1);
    expect(stored[0]?.entityId).to.equal(noteItem(first, 'written offline')?.dataset.id);
  });

  it('shows a refused note at once in every tab, then takes it back there and says why', async () => {
    const [first, second] = await twoTabs();
    /** The refused note as the other tab first showed it. */
    const seen: { id: string; state: string }[] = [];
    const observer = new MutationObserver(() => {
      const item = noteItem(second, 'not for this server');
      if (item && seen.length === 0) seen.push({ id: item.dataset.id!, state: item.dataset.state! });
    });
    observer.observe(documentOf(second).body, { subtree: true, childList: true });

    submit(first, 'not for this server', 'refused');
    await waitFor(() => seen.length === 1, 'the refused note in the other tab');
    await waitFor(() => textOf(first, '#rolled-back') !== '' && textOf(second, '#rolled-back') !== '', 'the rolled-back message in both tabs');
    await waitFor(() => !noteItem(first, 'not for this server') && !noteItem(second, 'not for this server'), 'the note gone from both tabs');
    observer.disconnect();
    expect(seen[0]?.state).to.equal('pending');
    const message = `Rolled back note ${seen[0]?.id}: unknown operation type "add_note"`;
    expect(textOf(first, '#rolled-back')).to.equal(message);
    expect(textOf(second, '#rolled-back')).to.equal(message);
  });
});
