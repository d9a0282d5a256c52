/**
 * A change fanned out to many clients is written to each socket as one prebuilt frame: it must be
 * a frame ws reads back whole at every size of the WebSocket length field, every client must get
 * every change, and each in LSN order among its own acknowledgements and changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { SharedFrame } from '../outbound.ts';
import { changeFrames, only, postChanges, startServer, tempDir, TestClient, update, upsert, wsUrl } from './helpers.ts';
import { compareLSN } from '../../src/protocol/lsn.ts';

const BOUNDED = { timeout: 20_000 };

test('changes of every frame size reach every client whole', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const clients = await Promise.all(Array.from({ length: 3 }, () => TestClient.open(wsUrl(server), t)));
  for (const client of clients) await client.sync('0/0');
  let binary = 0;
  for (const client of clients) client.socket.on('message', (_data, isBinary) => (binary += isBinary ? 1 : 0));
  // Frames whose length takes 16 bits (a changes frame is over 125 bytes) and 64 bits.
  const texts = ['a', 'b'.repeat(300), 'c'.repeat(70_000), 'é✓'.repeat(40_000)];
  for (const [i, text] of texts.entries()) {
    const posted = await postChanges(server.url, [update('note', `n${i}`, { text })]);
    assert.equal(posted.status, 200);
  }
  for (const client of clients) {
    const received = [];
    while (received.length < texts.length) received.push(...changeFrames([await client.next()]));
    assert.deepEqual(
      received.map((frame) => frame.changes.map((change) => (change.type === 'update' ? change.data : undefined))),
      texts.map((text) => [{ text }]),
    );
  }
  assert.equal(binary, 0, 'every frame is a text frame');
});

test('a writer gets its own changes and everyone else\'s in LSN order while others write', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t) });
  const writer = await TestClient.open(wsUrl(server), t);
  const other = await TestClient.open(wsUrl(server), t);
  await writer.sync('0/0');
  await other.sync('0/0');
  const count = 200;
  for (let i = 0; i < count; i += 1) {
    writer.send(upsert(`w${i}`, `w${i}`, { i }));
    other.send(upsert(`o${i}`, `o${i}`, { i }));
  }
  const seen: string[] = [];
  let acknowledged = 0;
  while (seen.length < 2 * count || acknowledged < count) {
    const frame = await writer.next();
    if (frame.type === 'operation_complete') acknowledged += 1;
    else seen.push(only(frame, 'changes').lsn);
  }
  for (let i = 1; i < seen.length; i += 1) assert.ok(compareLSN(seen[i - 1]!, seen[i]!) < 0, `${seen[i - 1]} then ${seen[i]}`);
});

test('a shared frame is a text frame a ws client reads back whole at every length boundary', BOUNDED, async (t) => {
  const texts = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000].flatMap((length) => ['a'.repeat(length), 'é'.repeat(Math.floor(length / 2))]);
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  t.after(() => server.close());
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  server.on('connection', (_socket, request) => {
    for (const text of texts) request.socket.write(new SharedFrame(text).framed);
  });
  const { port } = server.address() as { port: number };
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  t.after(() => client.terminate());
  const received: { text: string; isBinary: boolean }[] = [];
  await new Promise<void>((resolve, reject) => {
    client.on('message', (data: Buffer, isBinary) => {
      received.push({ text: data.toString('utf8'), isBinary });
      if (received.length === texts.length) resolve();
    });
    client.on('error', reject);
    client.on('close', (code) => reject(new Error(`closed with ${code}`)));
  });
  assert.deepEqual(received, texts.map((text) => ({ text, isBinary: false })));
});
