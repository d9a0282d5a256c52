import { executeServerCommand } from '@web/test-runner-commands';
import type { Change } from '../../src/protocol/change.ts';
import type { SyncConnectionElement } from '../../src/elements/sync-connection.ts';

export interface TestServer {
  id: string;
  port: number;
  wsUrl: string;
  httpUrl: string;
}

export interface ServerStats {
  lsn: string;
  records: number;
  changes: number;
  entities: number;
  operationsApplied: number;
  operationFramesReceived: number;
  clients: number;
}

export function startServer(options: { batchSize?: number; maxDepth?: number; token?: string } = {}): Promise<TestServer> {
  return executeServerCommand<TestServer, typeof options>('server-start', options);
}

export async function stopServer(server: TestServer, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
  await executeServerCommand('server-stop', { id: server.id, signal });
}

export async function startAgain(server: TestServer): Promise<void> {
  await executeServerCommand('server-start-again', { id: server.id });
}

export async function postChanges(server: TestServer, changes: Change[]): Promise<string> {
  const response = await fetch(`${server.httpUrl}/api/changes`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ changes }),
  });
  if (!response.ok) throw new Error(`POST /api/changes: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { lsn: string }).lsn;
}

export async function serverStats(server: TestServer): Promise<ServerStats> {
  return (await fetch(`${server.httpUrl}/api/stats`)).json() as Promise<ServerStats>;
}

export async function serverEntities(server: TestServer): Promise<{ lsn: string; entities: { entityType: string; entityId: string; data: unknown }[] }> {
  return (await fetch(`${server.httpUrl}/api/entities`)).json();
}

export function notes(count: number, from = 0): Change[] {
  return Array.from({ length: count }, (_, i) => ({
    type: 'update' as const,
    entityType: 'note',
    entityId: `n${from + i}`,
    data: { text: `note ${from + i}` },
  }));
}

let dbCounter = 0;
/** A database name no other test uses. */
export function uniqueDbName(): string {
  return `test-${Date.now().toString(36)}-${(dbCounter++).toString(36)}`;
}

export function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve) => {
    const request = indexedDB.deleteDatabase(name);
    request.onsuccess = request.onerror = request.onblocked = () => resolve();
  });
}

/** Waits until `condition` holds, polling; fails with `what` after `timeout` ms. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeout = 8000): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const caughtUp = new WeakSet<Element>();

/**
 * Creates a `<sync-connection>` for a test (the test appends it, and removes it when done). It
 * tracks whether a catch-up finished since the last `connected`, for {@link isLive}.
 */
export function createSyncElement(attributes: Record<string, string | boolean>): SyncConnectionElement {
  const element = document.createElement('sync-connection');
  for (const [name, value] of Object.entries(attributes)) {
    if (value === true) element.setAttribute(name, '');
    else if (value !== false) element.setAttribute(name, value);
  }
  element.addEventListener('connected', () => caughtUp.delete(element));
  element.addEventListener('sync_completed', () => caughtUp.add(element));
  return element;
}

/** Connected, and the catch-up that followed the connection is complete. */
export function isLive(element: SyncConnectionElement): boolean {
  return caughtUp.has(element) && element.getAttribute('status') === 'connected'
    && element.hasAttribute('connected') && !element.hasAttribute('syncing');
}

/** Records every event of the given types that reaches `target`. */
export function recordEvents(target: EventTarget, types: string[]): { type: string; detail: unknown; event: Event }[] {
  const seen: { type: string; detail: unknown; event: Event }[] = [];
  for (const type of types) {
    target.addEventListener(type, (event) => seen.push({ type, detail: (event as CustomEvent).detail, event }));
  }
  return seen;
}
