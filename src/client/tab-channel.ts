import { parseTabMessage, type TabMessage } from '../protocol/tab-messages.ts';

/**
 * A BroadcastChannel between the tabs of one client. A tab does not hear its own messages, and
 * hears only messages that parse as this version's (see protocol/tab-messages.ts). Where
 * BroadcastChannel is missing, nothing is sent or heard.
 */
export class TabChannel {
  readonly #channel: BroadcastChannel | undefined;

  constructor(name: string, onMessage: (message: TabMessage) => void) {
    if (typeof BroadcastChannel !== 'function') return;
    this.#channel = new BroadcastChannel(name);
    this.#channel.onmessage = (event: MessageEvent) => {
      const message = parseTabMessage(event.data);
      if (message) onMessage(message);
    };
  }

  post(message: TabMessage): void {
    this.#channel?.postMessage(message);
  }

  close(): void {
    this.#channel?.close();
  }
}
