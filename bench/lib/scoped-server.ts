/**
 * A child process of the scopes benchmark: the sync server in one of two modes, printing
 * `{"event":"listening","port":N}` and exiting when stdin ends. Run as
 *
 *   node --import tsx bench/lib/scoped-server.ts <scoped|open> <data dir>
 *
 * `scoped`: the token `s<N>` is the identity `s<N>` with the one scope `s<N>`, `admin` sees every
 * scope, and a change's scope is its data's `scope`. `open`: no identities and no scopes, every
 * client gets every change (the server before scopes).
 */
import { isRecord } from '../../src/protocol/change.ts';
import { createSyncServer, type SyncServerOptions } from '../../server/sync-server.ts';

const [mode, dataDir] = process.argv.slice(2);
if ((mode !== 'scoped' && mode !== 'open') || !dataDir) {
  process.stderr.write('usage: scoped-server.ts <scoped|open> <data dir>\n');
  process.exit(2);
}
const scoped: SyncServerOptions = {
  authenticate: (token) => (token === 'admin' ? { id: 'admin', scopes: ['*'] } : token?.startsWith('s') ? { id: token, scopes: [token] } : null),
  scopeOf: ({ data }) => (isRecord(data) && typeof data.scope === 'string' ? data.scope : 'none'),
};
const server = await createSyncServer({
  port: 0,
  host: '127.0.0.1',
  dataDir,
  heartbeatInterval: 0,
  maxConnections: 30_000,
  ...(mode === 'scoped' ? scoped : {}),
});
process.stdout.write(`${JSON.stringify({ event: 'listening', port: server.port })}\n`);
process.stdin.on('end', () => void server.close().then(() => process.exit(0)));
process.stdin.resume();
