import type { QueuedOperation } from '../protocol/state.ts';
import type { SerializedError, WorkerEvent } from '../protocol/worker-messages.ts';

/** What the tabs of one client tell each other. */
export type TabMessage =
  /** Leader to all: an event of its worker, `status` snapshots included. */
  | { kind: 'event'; event: WorkerEvent }
  /** A tab that just started asks the leader for its state (and so tells it someone listens). */
  | { kind: 'hello' }
  /** A tab just started leading: the others answer `hello`, so it knows it has listeners. */
  | { kind: 'leading' }
  /** A follower stored this operation in the shared outbox; the leader sends it. */
  | { kind: 'operation'; operation: QueuedOperation }
  /** A follower asks the leader to act; answered with `reply` when `id` is given. */
  | { kind: 'command'; id?: string; command: TabCommand }
  | { kind: 'reply'; id: string; ok: true; value: unknown }
  | { kind: 'reply'; id: string; ok: false; error: SerializedError }
  /** The leader removed these operations from the outbox: their promises reject everywhere. */
  | { kind: 'cleared'; ids: string[] };

export type TabCommand = 'connect' | 'force_connect' | 'sync' | 'clear_operations';

const KINDS: ReadonlySet<string> = new Set<TabMessage['kind']>([
  'event', 'hello', 'leading', 'operation', 'command', 'reply', 'cleared',
]);

function isTabMessage(value: unknown): value is TabMessage {
  return typeof value === 'object' && value !== null && KINDS.has((value as { kind?: unknown }).kind as string);
}

/**
 * A BroadcastChannel between the tabs of one client (one database and client id). A tab does not
 * hear its own messages. Where BroadcastChannel is missing, nothing is sent or heard.
 */
export class TabChannel {
  readonly #channel: BroadcastChannel | undefined;

  constructor(name: string, onMessage: (message: TabMessage) => void) {
    if (typeof BroadcastChannel !== 'function') return;
    this.#channel = new BroadcastChannel(name);
    this.#channel.onmessage = (event: MessageEvent) => {
      if (isTabMessage(event.data)) onMessage(event.data);
    };
  }

  post(message: TabMessage): void {
    this.#channel?.postMessage(message);
  }

  close(): void {
    this.#channel?.close();
  }
}
