/**
 * A test worker entry: the production sync engine with the browser's real WebSocket, wrapped so
 * the page can see every URL the worker dials and every frame it sends. Each observation is
 * posted as `{ spy: 'dial', url }` or `{ spy: 'sent', data }`; the page's client ignores messages
 * without a `type`. Start it with `element.createWorker = createSpyWorker` (spy-worker.ts).
 */
import { startSyncWorker, type WorkerEndpointLike } from '../../src/worker/sync-engine.ts';

const scope = self as unknown as WorkerEndpointLike & { postMessage(message: unknown): void };
const NativeWebSocket = WebSocket;

class SpyWebSocket extends NativeWebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    scope.postMessage({ spy: 'dial', url: String(url) });
  }

  override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    scope.postMessage({ spy: 'sent', data: typeof data === 'string' ? data : '(binary)' });
    super.send(data);
  }
}

startSyncWorker(scope, { WebSocket: SpyWebSocket });
