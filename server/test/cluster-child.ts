/** Test helper process: starts a throwaway cluster, prints where it lives, then waits to be ended. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startPostgresCluster } from './postgres-cluster.ts';

const cluster = await startPostgresCluster();
const dir = dirname(cluster.socketPath);
const postmaster = Number(readFileSync(join(dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
process.stdout.write(`${JSON.stringify({ dir, postmaster })}\n`);
setInterval(() => {}, 1000);
