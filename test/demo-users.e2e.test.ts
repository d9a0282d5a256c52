import { expect } from '@open-wc/testing';
import { SignJWT } from 'jose';
import { deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { useReferenceServer } from './helpers/reference-server.ts';
import { waitFor } from './helpers/wait.ts';

const SECRET = 'the secret of this test, long enough for HS256';

/** A token as the demo server signs them: the user's id and its scopes (shared, and its private notes). */
function tokenFor(user: string): Promise<string> {
  return new SignJWT({ scopes: ['shared', `private:${user}`] })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

/**
 * The demo's two users (`npm start` runs the server with --demo): the page gets both tokens in
 * its fragment, signs in as one, and has a database per user. Each user is one iframe here, as a
 * second browser would be.
 */
describe('the demo page with two users', () => {
  const server = useReferenceServer({ demo: true, jwtSecret: SECRET });
  const frames: HTMLIFrameElement[] = [];
  const databases: string[] = [];

  afterEach(async () => {
    for (const frame of frames.splice(0)) frame.remove();
    await Promise.all(databases.splice(0).map(deleteDatabase));
  });

  const documentOf = (frame: HTMLIFrameElement): Document => frame.contentDocument!;
  const textOf = (frame: HTMLIFrameElement, selector: string): string => documentOf(frame).querySelector(selector)?.textContent?.trim() ?? '';
  const notesOf = (frame: HTMLIFrameElement): string[] => [...documentOf(frame).querySelectorAll('#notes li span')].map((span) => span.textContent ?? '');
  const started = (frame: HTMLIFrameElement) => frame.contentDocument?.querySelector('sync-connection')?.hasAttribute('url') === true;

  async function open(db: string, user: string, tokens: Record<string, string>): Promise<HTMLIFrameElement> {
    const frame = document.createElement('iframe');
    frame.src = `/index.html?url=${encodeURIComponent(server.wsUrl)}&db=${encodeURIComponent(db)}&user=${user}#${new URLSearchParams(tokens)}`;
    frames.push(frame);
    databases.push(`${db}-alice`, `${db}-bob`);
    document.body.append(frame);
    await waitFor(() => started(frame) && textOf(frame, '#status') === 'connected', `the demo as ${user} to connect`);
    return frame;
  }

  function add(frame: HTMLIFrameElement, text: string, isPrivate: boolean): void {
    const doc = documentOf(frame);
    doc.querySelector<HTMLInputElement>('#text')!.value = text;
    doc.querySelector<HTMLInputElement>('#private')!.checked = isPrivate;
    doc.querySelector<HTMLFormElement>('#add')!.requestSubmit(doc.querySelector<HTMLButtonElement>('#add button')!);
  }

  it('a second user never sees the first one\'s private notes, and sees the shared ones; switching users shows each its own', async () => {
    const tokens = { alice: await tokenFor('alice'), bob: await tokenFor('bob') };
    const [aliceDb, bobDb] = [uniqueDbName(), uniqueDbName()];
    const alice = await open(aliceDb, 'alice', tokens);
    const bob = await open(bobDb, 'bob', tokens);
    expect(textOf(alice, '#user')).to.equal('alice');
    expect(textOf(bob, '#user')).to.equal('bob');
    expect(documentOf(alice).location.hash, 'the tokens leave the address bar').to.equal('');

    add(alice, 'alice\'s secret', true);
    await waitFor(() => documentOf(alice).querySelector('#notes li[data-private]')?.getAttribute('data-state') === 'synced', 'the private note stored');
    add(alice, 'hello from alice', false);
    add(bob, 'hello from bob', false);
    add(bob, 'bob\'s secret', true);
    // The server sends in log order: once bob has alice's later shared note, her private one would have come before it.
    await waitFor(() => notesOf(bob).includes('hello from alice') && notesOf(alice).includes('hello from bob'), 'the shared notes in both');
    await waitFor(() => [...documentOf(bob).querySelectorAll('#notes li')].every((li) => li.getAttribute('data-state') === 'synced'), 'bob\'s notes synced');
    await waitFor(() => notesOf(alice).length === 3 && [...documentOf(alice).querySelectorAll('#notes li')].every((li) => li.getAttribute('data-state') === 'synced'), 'alice\'s notes synced');
    expect(notesOf(bob).sort()).to.deep.equal(['bob\'s secret', 'hello from alice', 'hello from bob']);
    expect(notesOf(alice).sort()).to.deep.equal(['alice\'s secret', 'hello from alice', 'hello from bob']);

    // Bob's tab switches to alice: her own database, her notes, never bob's private one.
    const switched = new Promise((resolve) => bob.addEventListener('load', resolve, { once: true }));
    documentOf(bob).querySelector<HTMLButtonElement>('#switch button[data-user="alice"]')!.click();
    await switched;
    await waitFor(() => started(bob) && textOf(bob, '#user') === 'alice' && notesOf(bob).length === 3, 'bob\'s tab as alice, caught up');
    expect(notesOf(bob).sort()).to.deep.equal(['alice\'s secret', 'hello from alice', 'hello from bob']);
  });
});
