/**
 * The store of earlier releases, as the benchmark's baseline: a file of JSON lines, each a record
 * whose LSN is its end offset, read whole into memory on open (records, entities and operation
 * ids), and served from memory. Written here from its description; only the read side.
 */
import { readFile } from 'node:fs/promises';
import { decodeEntry } from '../../server/legacy-log.ts';
import type { Change } from '../../src/protocol/change.ts';

interface Held { position: number; changes: Change[] }

export class JsonLinesLog {
  readonly records: Held[] = [];
  readonly entities = new Map<string, unknown>();
  readonly operations = new Map<string, number>();

  static async open(path: string): Promise<JsonLinesLog> {
    const log = new JsonLinesLog();
    const content = await readFile(path);
    let start = 0;
    for (let newline = content.indexOf(10); newline >= 0; newline = content.indexOf(10, start)) {
      const entry = decodeEntry(content.toString('utf8', start, newline));
      if (typeof entry === 'string') throw new Error(`corrupt record at ${newline + 1}: ${entry}`);
      log.records.push({ position: newline + 1, changes: entry.changes });
      for (const change of entry.changes) {
        const key = `${change.entityType}\u0000${change.entityId}`;
        if (change.type === 'delete') log.entities.delete(key);
        else log.entities.set(key, change.data);
      }
      if (entry.operationId !== undefined) log.operations.set(entry.operationId, newline + 1);
      start = newline + 1;
    }
    return log;
  }

  /** Whole records after `after` holding about `maxChanges` changes. */
  changesAfter(after: number, maxChanges: number): Held[] {
    let low = 0;
    let high = this.records.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.records[mid]!.position > after) high = mid;
      else low = mid + 1;
    }
    const out: Held[] = [];
    let count = 0;
    for (let i = low; i < this.records.length && (out.length === 0 || count < maxChanges); i += 1) {
      out.push(this.records[i]!);
      count += this.records[i]!.changes.length;
    }
    return out;
  }
}
