/** The stamper's NOTIFY payload: the head, and the records it added when they fit. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeAnnouncement, encodeAnnouncement } from '../postgres-announcement.ts';
import type { LogRow } from '../postgres-reads.ts';

function row(lsn: string, text: string): LogRow {
  return { lsn, write_id: '00000000-0000-4000-8000-000000000001', operation_id: 'op', changes: [{ type: 'update', entityType: 'note', entityId: 'n', data: { text } }], refused: null, scopes: null };
}

test('records that fit travel with the head; the head alone otherwise', () => {
  const rows = [row('0/20', 'a'), row('1/0', 'b')];
  assert.deepEqual(decodeAnnouncement(encodeAnnouncement(0x1_0000_0000n, { after: 0x10n, rows })), { head: 0x1_0000_0000n, added: { after: 0x10n, rows } });
  const big = [row('0/20', 'x'.repeat(8_000))];
  assert.equal(encodeAnnouncement(0x20n, { after: 0x10n, rows: big }), '0/20');
  assert.deepEqual(decodeAnnouncement(encodeAnnouncement(0x20n, { after: 0x10n, rows: big })), { head: 0x20n });
  assert.deepEqual(decodeAnnouncement('0/20'), { head: 0x20n });
});

test('a payload that is not an announcement asks for a read of the log', () => {
  for (const payload of [undefined, '', 'x', '{', '{"head":"0/20"}', '{"head":"0/20","after":"zz","rows":[]}', '{"head":"0/20","after":"0/10","rows":[{"lsn":1}]}']) {
    assert.equal(decodeAnnouncement(payload), undefined, String(payload));
  }
});
