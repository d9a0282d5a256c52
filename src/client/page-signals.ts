/** What the page tells a client about itself. */
export interface PageSignalHandlers {
  /** The browser went online (`true`) or offline. */
  network(online: boolean): void;
  /** The page became visible (`true`) or hidden. */
  visibility(visible: boolean): void;
  /** The page's window got the focus. */
  focus(): void;
  /** The page is about to be frozen (hidden or cached): it will run nothing, its worker included. */
  freeze(): void;
  /** The frozen page runs again. */
  resume(): void;
}

/** Whether the page is visible now; true where there is no document. */
export function pageVisible(): boolean {
  return globalThis.document?.visibilityState !== 'hidden';
}

/**
 * Listens to `online`/`offline` and `focus` on the global scope and `visibilitychange`,
 * `freeze`/`resume` on the document until `signal` aborts. Where there is no global
 * `addEventListener` (not a window), it listens to nothing.
 */
export function listenToPage(handlers: PageSignalHandlers, signal: AbortSignal): void {
  if (typeof globalThis.addEventListener !== 'function') return;
  globalThis.addEventListener('online', () => handlers.network(true), { signal });
  globalThis.addEventListener('offline', () => handlers.network(false), { signal });
  globalThis.addEventListener('focus', () => handlers.focus(), { signal });
  globalThis.document?.addEventListener('visibilitychange', () => handlers.visibility(pageVisible()), { signal });
  globalThis.document?.addEventListener('freeze', () => handlers.freeze(), { signal });
  globalThis.document?.addEventListener('resume', () => handlers.resume(), { signal });
}
