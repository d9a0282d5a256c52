/** What the page tells a client about itself. */
export interface PageSignalHandlers {
  /** The browser went online (`true`) or offline. */
  network(online: boolean): void;
  /** The page is about to be frozen (hidden or cached): it will run nothing, its worker included. */
  freeze(): void;
  /** The frozen page runs again. */
  resume(): void;
}

/**
 * Listens to `online`/`offline` on the global scope and `freeze`/`resume` on the document until
 * `signal` aborts. Where there is no global `addEventListener` (not a window), it listens to nothing.
 */
export function listenToPage(handlers: PageSignalHandlers, signal: AbortSignal): void {
  if (typeof globalThis.addEventListener !== 'function') return;
  globalThis.addEventListener('online', () => handlers.network(true), { signal });
  globalThis.addEventListener('offline', () => handlers.network(false), { signal });
  globalThis.document?.addEventListener('freeze', () => handlers.freeze(), { signal });
  globalThis.document?.addEventListener('resume', () => handlers.resume(), { signal });
}
