import { ContextConsumer } from '@lit/context';
import { css, html, LitElement, nothing, type TemplateResult } from 'lit';
import { INITIAL_STATE, type SyncState } from '../protocol/state.ts';
import { syncStateContext } from './context.ts';

/**
 * Shows the state of the enclosing `<sync-connection>`: status, pending operations, and a
 * progress bar while a catch-up runs.
 *
 * @element sync-status
 * @attr {'disconnected' | 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'error'} status - Written by the element: the status it shows, for styling.
 * @csspart status - The status text.
 * @csspart pending - The pending operation count.
 * @csspart progress - The catch-up progress bar.
 */
export class SyncStatusElement extends LitElement {
  /**
   * Registers the element; a tag already defined is left as it is.
   * @param {string} tag - The tag name; default `sync-status`.
   * @param registry - The registry to define it in; default the global `customElements`.
   */
  static define(tag = 'sync-status', registry: CustomElementRegistry = customElements): void {
    if (!registry.get(tag)) registry.define(tag, this);
  }

  static override styles = css`
    :host { display: inline-flex; gap: 0.5em; align-items: center; font: inherit; }
    [part='status'] { font-weight: 600; }
    :host([status='connected']) [part='status'] { color: #17803d; }
    :host([status='reconnecting']) [part='status'],
    :host([status='connecting']) [part='status'] { color: #a15c00; }
    :host([status='error']) [part='status'], :host([status='offline']) [part='status'] { color: #b3261e; }
  `;

  /** The state of the enclosing `<sync-connection>`, received through context (`syncStateContext`). */
  state: SyncState = INITIAL_STATE;

  // A controller, not the `@consume` decorator, which es2022 output would lower into helpers.
  readonly #consumer = new ContextConsumer(this, {
    context: syncStateContext,
    subscribe: true,
    callback: (state) => {
      this.state = state;
    },
  });

  protected override updated(): void {
    this.setAttribute('status', this.state.status);
  }

  override render(): TemplateResult {
    const { status, pendingOperations, syncing, progress } = this.state;
    const bar = syncing && progress
      ? progress.total !== undefined
        ? html`<progress part="progress" max=${progress.total} value=${progress.applied}></progress>`
        : html`<progress part="progress"></progress>`
      : nothing;
    return html`
      <span part="status" role="status">${status}</span>
      ${pendingOperations > 0 ? html`<span part="pending">${pendingOperations} pending</span>` : nothing}
      ${bar}
    `;
  }
}

declare global {
  interface HTMLElementTagNameMap {
    'sync-status': SyncStatusElement;
  }
}
