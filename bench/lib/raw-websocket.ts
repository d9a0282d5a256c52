/**
 * The least a WebSocket client can be, for the fan-out benchmark's many clients: a TCP socket,
 * the opening handshake, and frames read straight from the bytes (text, ping, close; the server
 * never fragments). Each message carries the time its bytes reached this process, taken before
 * any parsing, so that 10,000 clients in one process measure the server rather than the cost of
 * a full client library per message. Not for anything but the benchmark.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';

export interface RawHandlers {
  open(): void;
  /** `at`: performance.timeOrigin + performance.now() when the chunk holding it was read. */
  message(payload: Buffer, at: number): void;
  close(): void;
}

export interface RawClient {
  sendText(text: string): void;
  close(): void;
}

const ACCEPT_SUFFIX = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OPCODE = { text: 0x1, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** A client frame: masked, as every frame a client sends must be. */
function frame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65_536 ? 2 : 8;
  const header = Buffer.alloc(2 + extra + 4);
  header[0] = 0x80 | opcode;
  if (extra === 0) header[1] = 0x80 | length;
  else if (extra === 2) {
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  mask.copy(header, 2 + extra);
  const masked = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i += 1) masked[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([header, masked]);
}

export function openRaw(url: URL, handlers: RawHandlers): RawClient {
  const key = randomBytes(16).toString('base64');
  const expected = createHash('sha1').update(key + ACCEPT_SUFFIX).digest('base64');
  const socket = connect({ host: url.hostname, port: Number(url.port), noDelay: true });
  let open = false;
  let closed = false;
  let pending: Buffer = Buffer.alloc(0);
  const finish = () => {
    if (closed) return;
    closed = true;
    socket.destroy();
    handlers.close();
  };
  socket.on('connect', () => {
    socket.write(
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
  });
  socket.on('data', (chunk: Buffer) => {
    const at = performance.timeOrigin + performance.now();
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    if (!open) {
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = pending.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101') || !head.includes(`\r\nSec-WebSocket-Accept: ${expected}`)) {
        finish();
        return;
      }
      open = true;
      pending = pending.subarray(end + 4);
      handlers.open();
    }
    while (pending.length >= 2) {
      const first = pending[0]!;
      let length = pending[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (pending.length < 4) return;
        length = pending.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (pending.length < 10) return;
        length = Number(pending.readBigUInt64BE(2));
        offset = 10;
      }
      if (pending.length < offset + length) return;
      const payload = pending.subarray(offset, offset + length);
      pending = pending.subarray(offset + length);
      const opcode = first & 0x0f;
      if ((first & 0x80) === 0) {
        finish();
        return;
      }
      if (opcode === OPCODE.text) handlers.message(payload, at);
      else if (opcode === OPCODE.ping) socket.write(frame(OPCODE.pong, payload));
      else if (opcode === OPCODE.close) finish();
    }
  });
  socket.on('error', finish);
  socket.on('close', finish);
  return {
    sendText: (text) => {
      if (open && !closed) socket.write(frame(OPCODE.text, Buffer.from(text, 'utf8')));
    },
    close: finish,
  };
}
