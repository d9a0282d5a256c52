/**
 * A small sync server in memory, written from docs/protocol.md for the kit's own tests: right by
 * default, and wrong in the one way a fault names, so that the kit can be shown to catch exactly
 * that. Its LSNs count bytes from just below a 32-bit boundary, so a short run crosses it.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Change } from '../../src/protocol/change.ts';
import { formatLSN, parseLSN } from '../../src/protocol/lsn.ts';
import { applyMergePatch, isPlainObject } from '../../src/protocol/merge-patch.ts';
import { parseClientFrame, type WireOperation } from '../../src/protocol/wire.ts';

export interface Faults {
  /** A catch-up sends the whole log, whatever the client's lastLSN. */
  replayEverything?: boolean;
  /** A repeated operation id is applied again, as a new operation. */
  applyRepeatsTwice?: boolean;
  /** The low 32 bits of an LSN wrap around without carrying into the high 32. */
  lsnWithoutCarry?: boolean;
}

interface LogRecord {
  position: bigint;
  changes: Change[];
}

/** Where the log starts: 64 KiB below the first 32-bit boundary. */
const START = 0x1_0000_0000n - 0x1_0000n;

export async function startToyServer(faults: Faults = {}): Promise<{ url: string; close(): Promise<void> }> {
  const log: LogRecord[] = [];
  const entities = new Map<string, unknown>();
  const applied = new Map<string, bigint>();
  const live = new Set<WebSocket>();
  let head = START;

  const send = (socket: WebSocket, frame: unknown) => socket.send(JSON.stringify(frame));
  const batch = (record: LogRecord) => ({ type: 'changes', changes: record.changes, lsn: formatLSN(record.position) });

  function apply(operation: WireOperation): { lsn: bigint; record?: LogRecord } | string {
    const known = applied.get(operation.id);
    if (known !== undefined && !faults.applyRepeatsTwice) return { lsn: known };
    if (!['upsert', 'patch', 'delete'].includes(operation.type)) return `unknown operation type ${operation.type}`;
    const payload = operation.payload;
    if (!isPlainObject(payload)) return 'the payload must be an object';
    const { entityType, entityId, data } = payload;
    if (typeof entityType !== 'string' || entityType === '' || typeof entityId !== 'string' || entityId === '') return 'entityType and entityId must be non-empty strings';
    const key = JSON.stringify([entityType, entityId]);
    let change: Change;
    if (operation.type === 'delete') {
      change = { type: 'delete', entityType, entityId };
    } else if (operation.type === 'upsert') {
      if (!('data' in payload)) return 'an upsert needs data';
      change = { type: 'update', entityType, entityId, data };
    } else {
      if (!isPlainObject(data)) return 'a patch needs an object';
      change = { type: 'update', entityType, entityId, data: applyMergePatch(entities.get(key), data) };
    }
    if (change.type === 'delete') entities.delete(key);
    else entities.set(key, change.data);
    head += BigInt(Buffer.byteLength(JSON.stringify(change)));
    if (faults.lsnWithoutCarry) head = (START & ~0xffff_ffffn) | (head & 0xffff_ffffn);
    const record = { position: head, changes: [change] };
    log.push(record);
    applied.set(operation.id, head);
    return { lsn: head, record };
  }

  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (socket) => {
    let synced = false;
    socket.on('close', () => live.delete(socket));
    // ws closes the socket itself on a protocol error (1007 for text that is not UTF-8).
    socket.on('error', () => {});
    socket.on('message', (data, isBinary) => {
      const parsed = parseClientFrame(isBinary ? data : data.toString());
      if (!parsed.ok) return send(socket, { type: 'error', message: parsed.error });
      const message = parsed.message;
      if (message.type === 'ping') return send(socket, { type: 'pong' });
      if (message.type === 'sync') {
        const from = parseLSN(message.lastLSN) ?? 0n;
        if (from > head) {
          live.delete(socket);
          return send(socket, { type: 'reset', reason: 'ahead of the log' });
        }
        send(socket, { type: 'sync_start', lsn: formatLSN(head) });
        for (const record of log) if (faults.replayEverything || record.position > from) send(socket, batch(record));
        send(socket, { type: 'sync_complete', lsn: formatLSN(head) });
        synced = true;
        live.add(socket);
        return undefined;
      }
      if (!synced) return send(socket, { type: 'error', message: 'sync first' });
      const { operation } = message;
      const outcome = apply(operation);
      if (typeof outcome === 'string') return send(socket, { type: 'operation_error', id: operation.id, message: outcome });
      if (outcome.record) for (const client of live) send(client, batch(outcome.record));
      return send(socket, { type: 'operation_complete', id: operation.id, lsn: formatLSN(outcome.lsn) });
    });
  });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`,
    close: () => new Promise<void>((resolve) => {
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    }),
  };
}
