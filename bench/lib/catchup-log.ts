/**
 * The catch-up benchmarks' server log: `count` changes of about 200 bytes of `data` each, posted
 * `perRecord` at a time (one record each, so that a `changes` frame holds `perRecord`).
 */
import { randomBytes } from 'node:crypto';
import type { BenchServer } from './harness.ts';

/** About 200 bytes of JSON per `data`: a counter and text that does not compress to nothing. */
function change(i: number): object {
  const text = randomBytes(150).toString('base64').slice(0, 180);
  return { type: 'update', entityType: 'item', entityId: `item-${String(i).padStart(7, '0')}`, data: { n: i, text } };
}

/** Appends the changes and returns the log's head. */
export async function loadCatchUpLog(server: BenchServer, count: number, perRecord: number): Promise<string> {
  for (let first = 0; first < count; first += perRecord) {
    const changes = Array.from({ length: Math.min(perRecord, count - first) }, (_, k) => change(first + k));
    const response = await fetch(`${server.url}/api/changes`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ changes }),
    });
    if (!response.ok) throw new Error(`POST /api/changes: ${response.status} ${await response.text()}`);
  }
  const stats = (await (await fetch(`${server.url}/api/stats`)).json()) as { lsn: string; changes: number };
  if (stats.changes !== count) throw new Error(`the server holds ${stats.changes} changes, not ${count}`);
  return stats.lsn;
}
