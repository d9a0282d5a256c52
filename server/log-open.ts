import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { formatLSN } from '../src/protocol/lsn.ts';
import { createIfMissing, MAX_GROUP_BYTES, openForUpdate, syncDirectory, type LogFile, type OpenLogFile } from './append-log.ts';
import { lockDataDir, type DataDirLock } from './data-dir-lock.ts';
import { importLegacyLog, type ImportReport } from './legacy-log.ts';
import { LogIndex } from './log-index.ts';
import { decodeFileHeader, encodeFileHeader, FILE_HEADER_BYTES } from './log-format.ts';
import { scanLog, type Damage } from './log-scan.ts';
import { decodeIndex } from './record-codec.ts';

export const LOG_FILE = 'sync.log';
/** The version-1 log (JSON lines) of earlier releases, imported on first open. */
export const LEGACY_LOG_FILE = 'changes.log';
/** Added to the log's name for the file a compaction writes before it replaces the log. */
export const COMPACTING_SUFFIX = '.compacting';

export interface LogOpenOptions {
  /** Opens the log file for reading and writing; default `fs.promises.open(path, 'r+')`. */
  openFile?: OpenLogFile;
  /**
   * Cut the log at the first damaged record, keeping every record before it; the rest is moved to
   * `sync.log.damaged-<offset>`. Without it, a damaged log (other than a torn tail) refuses to open.
   */
  recover?: boolean;
}

/** What opening found and did. */
export interface OpenReport {
  /** Bytes of a torn tail that were cut (0 when none). */
  truncatedBytes: number;
  /** Why the tail was cut, when it was. */
  torn?: Damage;
  /** Damage cut away because `recover` was asked for, and where the cut bytes were put. */
  recovered?: Damage & { savedTo: string };
  /** A version-1 log imported into this one. */
  imported?: ImportReport;
}

/** The log was found damaged; nothing was changed. */
export class DamagedLogError extends Error {
  override readonly name = 'DamagedLogError';
}

/**
 * Locks `dir`, imports a version-1 log if that is all there is, creates the log if there is none,
 * then reads it once from end to end, checking every record and building the index. A torn tail
 * (an unreadable end no longer than one group commit, with nothing intact after it) is reported
 * and cut; any other damage refuses to open unless `recover` is set.
 */
export async function openLog(dir: string, options: LogOpenOptions): Promise<{ file: LogFile; index: LogIndex; lock: DataDirLock; report: OpenReport }> {
  const lock = await lockDataDir(dir);
  let file: LogFile | undefined;
  try {
    const path = join(dir, LOG_FILE);
    const report: OpenReport = { truncatedBytes: 0 };
    const legacy = join(dir, LEGACY_LOG_FILE);
    if (!existsSync(path) && existsSync(legacy)) report.imported = await importLegacyLog(legacy, path);
    // A compaction that did not finish: the log itself was never replaced.
    await rm(`${path}${COMPACTING_SUFFIX}`, { force: true });
    await createIfMissing(path);
    file = await (options.openFile ?? openForUpdate)(path);
    let { size } = await file.stat();
    if (size < FILE_HEADER_BYTES) {
      // Created, and the process died before its header was durable: nothing was ever written.
      await file.truncate(0);
      await file.write(encodeFileHeader(0n), 0, FILE_HEADER_BYTES, 0);
      await file.datasync();
      size = FILE_HEADER_BYTES;
    }
    const { index, damage } = await indexLog(file, path, size);
    if (damage) {
      const torn = damage.nextIntact === undefined && damage.bytes <= MAX_GROUP_BYTES;
      if (!torn && options.recover !== true) throw new DamagedLogError(damagedMessage(path, damage, index));
      const savedTo = torn ? undefined : `${path}.damaged-${damage.offset}`;
      if (savedTo !== undefined) await pipeline(createReadStream(path, { start: damage.offset }), createWriteStream(savedTo));
      await file.truncate(damage.offset);
      await file.datasync();
      if (savedTo !== undefined) await syncDirectory(dir);
      if (savedTo === undefined) report.torn = damage;
      else report.recovered = { ...damage, savedTo };
      report.truncatedBytes = damage.bytes;
    }
    return { file, index, lock, report };
  } catch (error) {
    await file?.close().catch(() => {});
    await lock.release();
    throw error;
  }
}

/** Reads the log's header and checks every record up to `size`, building the index from their indexes. */
export async function indexLog(file: LogFile, path: string, size: number): Promise<{ index: LogIndex; damage: Damage | undefined }> {
  const header = Buffer.alloc(FILE_HEADER_BYTES);
  await file.read(header, 0, FILE_HEADER_BYTES, 0);
  const found = decodeFileHeader(header);
  if (typeof found === 'string') throw new DamagedLogError(`cannot open ${path}: ${found}`);
  const index = new LogIndex(found.base, found.floor, found.compacted);
  const { damage } = await scanLog(file, FILE_HEADER_BYTES, size, (frame) => {
    const recordIndex = decodeIndex(frame.index, frame.header.changeCount);
    if (typeof recordIndex === 'string') return `a record's index is unreadable: ${recordIndex}`;
    index.add(frame.start, frame.end, recordIndex);
    return undefined;
  });
  return { index, damage };
}

function damagedMessage(path: string, damage: Damage, index: LogIndex): string {
  const where = `byte ${damage.offset} (just after LSN ${formatLSN(index.head)})`;
  const after = damage.nextIntact === undefined
    ? `the last ${damage.bytes} bytes are unreadable, more than one interrupted write leaves`
    : `intact records follow from byte ${damage.nextIntact}`;
  return `the log ${path} is damaged at ${where}: ${damage.reason}; ${after}. Nothing was changed. ` +
    `To keep the ${index.records} records before the damage and move the rest aside to ${path}.damaged-${damage.offset}, ` +
    'start the server once with --recover-log';
}
