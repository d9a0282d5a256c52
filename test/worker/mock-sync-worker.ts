/**
 * A test worker entry: the real sync engine, dialing a mock-socket server that runs in this same
 * worker (a mock server in the page cannot intercept a worker's socket). The page drives the
 * server through `mock` messages (see mock-protocol.ts); everything else goes to the engine.
 */
import { Server, WebSocket, type Client } from 'mock-socket';
import { isRecord } from '../../src/protocol/change.ts';
import { startSyncWorker, type WorkerEndpointLike } from '../../src/worker/sync-engine.ts';
import { isMockMessage, MOCK_SERVER_URL, type MockCommand, type MockReport } from './mock-protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

let refusing = false;
let silent = false;
let randomValue: number | null = null;
let clockValue: number | null = null;
let failingEntityId: string | null = null;
let failingFolds = false;
let maxPayload: number | null = null;
let bufferedAmount = 0;
let connections = 0;
const open = new Map<number, Client>();

function report(message: MockReport): void {
  scope.postMessage(message);
}

// ---- the fault: a real IndexedDB write that fails mid-transaction and aborts it -----------------

const originalPut = IDBObjectStore.prototype.put;
const originalAdd = IDBObjectStore.prototype.add;
/** A segment record (one commit of the server's changes) that holds a change to `entityId`. */
function touches(value: unknown, entityId: string): boolean {
  if (!isRecord(value) || !Array.isArray(value.batches)) return false;
  return value.batches.some((batch: unknown) => isRecord(batch) && Array.isArray(batch.changes)
    && batch.changes.some((change: unknown) => isRecord(change) && change.entityId === entityId));
}
IDBObjectStore.prototype.add = function add(this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
  if (failingEntityId !== null && this.name === 'segments' && touches(value, failingEntityId)) {
    // Adding one key twice in one transaction: the second request fails with ConstraintError and,
    // like a full disk, aborts the whole transaction. (A negative key leaves the key generator be.)
    originalAdd.call(this, value, -1);
    return originalAdd.call(this, value, -1);
  }
  return originalAdd.call(this, value, key);
};
IDBObjectStore.prototype.put = function put(this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
  // A fold writes entities; while folds fail, IndexedDB refuses them (a full disk, say).
  if (failingFolds && this.name === 'entities') throw new DOMException('the disk is full (a test)', 'QuotaExceededError');
  return originalPut.call(this, value, key);
};

// ---- the server -------------------------------------------------------------------------------

const server = new Server(MOCK_SERVER_URL, { mock: false, verifyClient: () => !refusing });

server.on('connection', (socket) => {
  connections += 1;
  const conn = connections;
  open.set(conn, socket);
  report({ mock: 'connection', conn, url: socket.url });
  let refused = false;
  socket.on('message', (data) => {
    // Like a real server, it reads nothing more from a socket it closed for a frame too big.
    if (refused) return;
    const text = String(data);
    if (maxPayload !== null && text.length > maxPayload) {
      refused = true;
      report({ mock: 'oversized', conn, length: text.length });
      socket.close({ code: 1009, reason: 'Max payload size exceeded', wasClean: true });
      return;
    }
    let frame: unknown = text;
    try {
      frame = JSON.parse(text);
    } catch {
      // Reported as the raw text.
    }
    report({ mock: 'frame', conn, frame });
    if (!silent && isRecord(frame) && frame.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
  });
  socket.on('close', () => {
    if (open.delete(conn)) report({ mock: 'closed', conn });
  });
});

function run(command: MockCommand): void {
  switch (command.mock) {
    case 'send':
      for (const frame of command.frames) {
        const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
        for (const socket of open.values()) {
          if (socket.readyState === WebSocket.OPEN) socket.send(text);
        }
      }
      return;
    case 'close':
      for (const socket of open.values()) {
        socket.close({ code: command.code, reason: command.reason, wasClean: true });
      }
      return;
    case 'silence':
      silent = command.on;
      return;
    case 'refuse':
      refusing = command.on;
      return;
    case 'random':
      randomValue = command.value;
      return;
    case 'stall': {
      const until = performance.now() + command.ms;
      while (performance.now() < until) { /* the thread is busy */ }
      return;
    }
    case 'clock':
      clockValue = command.at;
      return;
    case 'fail_writes':
      failingEntityId = command.entityId;
      return;
    case 'fail_folds':
      failingFolds = command.on;
      return;
    case 'max_payload':
      maxPayload = command.length;
      return;
    case 'buffered':
      bufferedAmount = command.amount;
      return;
    default: {
      const unknown: never = command;
      throw new Error(`unknown mock command ${JSON.stringify(unknown)}`);
    }
  }
}

scope.addEventListener('message', (event) => {
  const data: unknown = event.data;
  if (!isMockMessage(data)) return;
  const command = data as MockCommand;
  try {
    run(command);
    report({ mock: 'reply', id: command.id, ok: true });
  } catch (error) {
    report({ mock: 'reply', id: command.id, ok: false, error: String(error) });
  }
});

// ---- the engine, with mock-socket's WebSocket -------------------------------------------------

/**
 * mock-socket's socket, with the `bufferedAmount` the `buffered` command sets while it is open,
 * reporting each dial as it is made.
 */
class BufferingWebSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    report({ mock: 'dial', url });
    Object.defineProperty(this, 'bufferedAmount', {
      get: () => (this.readyState === WebSocket.OPEN ? bufferedAmount : 0),
    });
  }
}

const endpoint: WorkerEndpointLike = {
  postMessage: (message) => scope.postMessage(message),
  addEventListener: (type, listener) => {
    scope.addEventListener(type, (event) => {
      if (!isMockMessage(event.data)) listener(event);
    });
  },
};

const window = new URL(scope.location.href).searchParams.get('window');

startSyncWorker(endpoint, {
  WebSocket: BufferingWebSocket,
  ...(window === null ? {} : { inFlightWindow: Number(window) }),
  random: () => randomValue ?? Math.random(),
  now: () => clockValue ?? performance.now(),
});
