import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { isRecord, parseChanges, type Change } from '../src/protocol/change.ts';
import { syncDirectory } from './append-log.ts';
import { encodeFileHeader } from './log-format.ts';
import { encodeRecord } from './record-codec.ts';

/** What one line of a version-1 log (`changes.log`, JSON lines) holds. */
export interface LogEntry {
  changes: Change[];
  operationId?: string;
}

/** One JSON line, newline included. */
export function encodeEntry(changes: readonly Change[], operationId?: string): Buffer {
  const entry = operationId === undefined ? { changes } : { op: operationId, changes };
  return Buffer.from(`${JSON.stringify(entry)}\n`, 'utf8');
}

/** Parses one line of a version-1 log; returns the reason when it is not a valid entry. */
export function decodeEntry(text: string): LogEntry | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (!isRecord(value) || !Array.isArray(value.changes)) return 'no "changes" array';
  const { changes, invalid } = parseChanges(value.changes);
  if (invalid.length > 0) return `invalid change: ${invalid[0]!.reason}`;
  if (value.op === undefined) return { changes };
  if (typeof value.op !== 'string' || value.op.length === 0) return 'invalid "op"';
  return { changes, operationId: value.op };
}

/** What importing a version-1 log did. */
export interface ImportReport {
  /** Path the version-1 log was renamed to. */
  keptAt: string;
  records: number;
  /** Bytes of a torn last line that were left out. */
  tornBytes: number;
}

/**
 * Writes the records of a version-1 log (JSON lines; a line's LSN was its end offset) into a new
 * log at `target` whose base is the old file's size, so every new LSN is above every old one: a
 * client that synced with the old log replays the imported records once and is whole again. The
 * old file is then renamed `<name>.imported`. Read as a stream; a line that is not a valid entry
 * stops the import, saying where.
 */
export async function importLegacyLog(source: string, target: string): Promise<ImportReport> {
  const { size } = await stat(source);
  const partial = `${target}.importing`;
  const out = await open(partial, 'w');
  let records = 0;
  let read = 0;
  let tornBytes = 0;
  try {
    await out.write(encodeFileHeader(BigInt(size)));
    const lines = createInterface({ input: createReadStream(source), crlfDelay: Infinity });
    for await (const line of lines) {
      const bytes = Buffer.byteLength(line) + 1;
      read += bytes;
      if (read > size) {
        // The last line has no newline: a write torn by a crash, never acknowledged.
        tornBytes = bytes - 1;
        break;
      }
      const entry = decodeEntry(line);
      if (typeof entry === 'string') throw new Error(`cannot import ${source}: the record ending at byte ${read} is corrupt (${entry})`);
      await out.write(encodeRecord(entry.changes, entry.operationId));
      records += 1;
    }
    await out.datasync();
  } catch (error) {
    await out.close();
    await rm(partial, { force: true });
    throw error;
  }
  await out.close();
  await rename(partial, target);
  const keptAt = `${source}.imported`;
  await rename(source, keptAt);
  await syncDirectory(dirname(target));
  return { keptAt, records, tornBytes };
}
