/**
 * Reads a server's whole change log the way a fresh client does: a `sync` from `0/0` over a
 * WebSocket, every batch until `sync_complete`. The chaos run counts in it how often each
 * operation was applied.
 */
import { WebSocket } from 'ws';
import type { Change } from '../src/protocol/change.ts';
import { parseServerFrame } from '../src/protocol/wire.ts';

const READ_TIMEOUT_MS = 120_000;

export async function readLog(wsUrl: string, clientId: string): Promise<Change[]> {
  const socket = new WebSocket(wsUrl);
  const changes: Change[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no sync_complete from ${wsUrl} within ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      socket.once('error', fail);
      socket.once('close', (code) => fail(new Error(`${wsUrl} closed (${code}) before sync_complete`)));
      socket.once('open', () => socket.send(JSON.stringify({ type: 'sync', clientId, lastLSN: '0/0' })));
      socket.on('message', (data) => {
        const parsed = parseServerFrame(data.toString());
        if (!parsed.ok) return fail(new Error(`${wsUrl} sent a frame the protocol does not allow: ${parsed.error}`));
        const frame = parsed.message;
        if (frame.type === 'changes') changes.push(...frame.changes);
        else if (frame.type === 'sync_error' || frame.type === 'reset') fail(new Error(`${wsUrl} answered ${frame.type}`));
        else if (frame.type === 'sync_complete') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    socket.removeAllListeners('close');
    socket.on('error', () => undefined);
    socket.terminate();
  }
  return changes;
}
