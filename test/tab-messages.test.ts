import { expect } from '@open-wc/testing';
import { INITIAL_STATE } from '../src/protocol/state.ts';
import { parseTabMessage, TAB_PROTOCOL_VERSION, tabsName } from '../src/protocol/tab-messages.ts';

const state = { ...INITIAL_STATE, status: 'connected', clientId: 'c', lastLSN: '0/A', isConnected: true, role: 'leader' };
const operation = { id: 'op-1', type: 'increment', payload: { n: 1 }, priority: 0, seq: 7, queuedAt: 1 };
const withEffects = {
  ...operation, id: 'op-2', effects: [{ type: 'patch', entityType: 'counter', entityId: 'c', data: { n: 1 } }, { type: 'delete', entityType: 'note', entityId: 'n' }],
};

describe('messages between the tabs of one client', () => {
  it('are taken when every field has its shape', () => {
    const messages = [
      { kind: 'hello' },
      { kind: 'leading' },
      { kind: 'event', event: { type: 'status', state } },
      { kind: 'event', event: { type: 'status', state: { ...state, progress: { applied: 3, total: 9 }, lastError: { code: 'server', message: 'm' } } } },
      { kind: 'event', event: { type: 'changes', changes: [{ type: 'delete', entityType: 'note', entityId: '1' }], lsn: '0/B' } },
      { kind: 'event', event: { type: 'connected', clientId: 'c', lastLSN: '0/0' } },
      { kind: 'event', event: { type: 'disconnected', code: 1006, reason: '', willReconnect: true } },
      { kind: 'event', event: { type: 'error', code: 'invalid_change', message: 'm', invalid: [{ index: 0, reason: 'r' }] } },
      { kind: 'event', event: { type: 'operation_complete', id: 'op-1', lsn: '0/C' } },
      { kind: 'event', event: { type: 'operation_complete', id: 'op-1', settled: true } },
      { kind: 'event', event: { type: 'operation_error', id: 'op-1', message: 'no', entities: [{ entityType: 'note', entityId: 'n' }] } },
      { kind: 'event', event: { type: 'changes', changes: [], lsn: '0/D', settled: ['op-1', 'op-2'] } },
      { kind: 'event', event: { type: 'sync_reset', reason: 'restored' } },
      { kind: 'event', event: { type: 'sync_reset' } },
      { kind: 'event', event: { type: 'sync_progress', applied: 1 } },
      { kind: 'queued', operations: [operation, withEffects] },
      { kind: 'stored', operations: [operation] },
      { kind: 'dropped', operations: [withEffects] },
      { kind: 'command', command: 'connect' },
      { kind: 'command', id: 'ask-1', command: 'clear_operations' },
      { kind: 'command', command: 'visible' },
      { kind: 'command', command: 'focus' },
      { kind: 'reply', id: 'ask-1', ok: true, value: ['op-1'] },
      { kind: 'reply', id: 'ask-1', ok: false, error: { name: 'SyncError', message: 'm', code: 'closed' } },
      { kind: 'cleared', ids: ['op-1'] },
    ];
    for (const message of messages) {
      expect(parseTabMessage(structuredClone(message)), JSON.stringify(message)).to.deep.equal(message);
    }
  });

  it('keep only the fields they define', () => {
    const parsed = parseTabMessage({ kind: 'stored', operations: [{ ...operation, extra: 'x' }], also: 1 });
    expect(parsed).to.deep.equal({ kind: 'stored', operations: [operation] });
  });

  it('are ignored when any field is malformed, not only the kind', () => {
    const malformed = [
      null, 'hello', [], {}, { kind: 'welcome' },
      { kind: 'event', event: { type: 'status', state: { ...state, status: 'hacked' } } },
      { kind: 'event', event: { type: 'status', state: { ...state, lastLSN: 'zero' } } },
      { kind: 'event', event: { type: 'status', state: { ...state, pendingOperations: -1 } } },
      { kind: 'event', event: { type: 'status', state: { ...state, role: undefined } } },
      { kind: 'event', event: { type: 'status' } },
      { kind: 'event', event: { type: 'changes', changes: [{ type: 'update', entityType: 'note', entityId: '1' }] } },
      { kind: 'event', event: { type: 'operation_complete', id: '' } },
      { kind: 'event', event: { type: 'error', code: 'oops', message: 'm' } },
      { kind: 'event', event: { type: 'apply', applyId: 'a', batches: [] } },
      { kind: 'queued', operations: [{ ...operation, id: 42 }] },
      { kind: 'stored', operations: [{ ...withEffects, effects: [{ type: 'patch', entityType: 'note', data: {} }] }] },
      { kind: 'queued', operations: [{ ...withEffects, effects: [{ type: 'patch', entityType: 'note', entityId: 'n', data: 'x' }] }] },
      { kind: 'stored', operations: operation },
      { kind: 'dropped', ids: ['op-1'] },
      { kind: 'operations', operations: [operation] },
      { kind: 'event', event: { type: 'operation_error', id: 'op-1', message: 'no' } },
      { kind: 'event', event: { type: 'changes', changes: [], settled: [1] } },
      { kind: 'command', command: 'drop_database' },
      { kind: 'command', command: 'hidden' },
      { kind: 'command', id: 7, command: 'sync' },
      { kind: 'reply', id: 'ask-1', ok: false, error: 'failed' },
      { kind: 'reply', ok: true },
      { kind: 'cleared', ids: ['op-1', 2] },
      { kind: 'cleared', ids: 'op-1' },
    ];
    for (const message of malformed) {
      expect(parseTabMessage(message), JSON.stringify(message)).to.equal(undefined);
    }
  });

  it('travel on a channel (and a Web Lock) named with the protocol version', () => {
    expect(tabsName('notes', 'c1')).to.equal(`sync-connection/tabs-v${TAB_PROTOCOL_VERSION}:notes:c1`);
  });
});
