/**
 * The production worker entry: `new Worker(new URL('./sync-worker.ts', import.meta.url),
 * { type: 'module' })`. Serves the page on this worker's global scope with the real WebSocket.
 */
import { startSyncWorker } from './sync-engine.ts';

startSyncWorker(self, { WebSocket });
