/**
 * A child process for the crash tests: opens the embedded log in argv[2], appends argv[3] updates
 * to 20 entities (printing each acknowledged one), then compacts and stops at argv[4] ('written':
 * the new file is synced beside the log; 'replaced': it was renamed over the log), printing
 * "stopped" there and waiting to be killed.
 */
import { FileSyncStore } from '../store.ts';

const [dir, count, step] = process.argv.slice(2) as [string, string, string];
const { store } = await FileSyncStore.open(dir, {
  onCompactionStep: async (at) => {
    if (at !== step) return;
    process.stdout.write('stopped\n');
    await new Promise(() => {});
  },
});
for (let n = 0; n < Number(count); n += 1) {
  const result = await store.append([{ type: 'update', entityType: 'item', entityId: String(n % 20), data: { n }, timestamp: Date.now() }], `op-${n}`);
  process.stdout.write(`acked ${n} ${result.lsn}\n`);
}
await store.compact();
