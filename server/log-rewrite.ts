import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory, type LogFile } from './append-log.ts';
import type { IndexedLog } from './indexed-log.ts';
import { copyRecords, writeCompacted, Writer, type CompactedFile } from './log-compaction.ts';
import type { LogIndex } from './log-index.ts';
import { COMPACTING_SUFFIX, indexLog, LOG_FILE } from './log-open.ts';
import { scanLog } from './log-scan.ts';
import { decodeIndex } from './record-codec.ts';

/** The steps of a compaction where a crash matters: the new file written and synced; it replaced the log. */
export type CompactionStep = 'written' | 'replaced';

/**
 * The compacted copy of the log that a compaction writes beside it: written and read back, brought
 * up to date with the appends made meanwhile, synced, then renamed over the log. Until that rename
 * the old file is the log, and a crash leaves only a file that opening the store removes.
 */
export class LogRewrite {
  readonly #dir: string;
  readonly #temporary: string;
  readonly file: LogFile;
  #written: (CompactedFile & { index: LogIndex }) | undefined;
  #installed = false;

  private constructor(dir: string, temporary: string, file: LogFile) {
    this.#dir = dir;
    this.#temporary = temporary;
    this.file = file;
  }

  /** Creates the new file, empty, beside the log in `dir`. */
  static async begin(dir: string): Promise<LogRewrite> {
    const temporary = `${join(dir, LOG_FILE)}${COMPACTING_SUFFIX}`;
    return new LogRewrite(dir, temporary, await open(temporary, 'w+'));
  }

  /** True once the new file is the log. */
  get installed(): boolean {
    return this.#installed;
  }

  /** The new file's index; only after {@link write} wrote it. */
  get index(): LogIndex {
    if (!this.#written) throw new Error('the compacted log is not written yet');
    return this.#written.index;
  }

  /**
   * Writes the compacted form of `source` (see `writeCompacted`) and reads it back; undefined when
   * it would not be smaller.
   */
  async write(source: IndexedLog, horizonEnd: number, keepRemovalsSince: number): Promise<CompactedFile | undefined> {
    const written = await writeCompacted(source.file, source.index, this.file, horizonEnd, source.index.end, keepRemovalsSince);
    if (!written) return undefined;
    const next = await indexLog(this.file, this.#temporary, written.end);
    if (next.damage) throw new Error(`the compacted log does not read back: ${next.damage.reason}`);
    this.#written = { ...written, index: next.index };
    return written;
  }

  /** Copies the records appended to `source` since {@link write}, at the same offsets from its end, and syncs. */
  async catchUp(source: IndexedLog): Promise<void> {
    const written = this.#written;
    if (!written) throw new Error('the compacted log is not written yet');
    const writer = new Writer(this.file, written.end);
    await copyRecords(source.file, written.copiedTo, source.index.end, writer);
    const tail = await scanLog(this.file, written.end, writer.end, (frame) => {
      const recordIndex = decodeIndex(frame.index, frame.header.changeCount);
      if (typeof recordIndex === 'string') return recordIndex;
      written.index.add(frame.start, frame.end, recordIndex);
      return undefined;
    });
    if (tail.damage) throw new Error(`the compacted log does not read back: ${tail.damage.reason}`);
    await this.file.datasync();
  }

  /** Renames the new file over the log, durably, awaiting `onStep` at the steps a crash test stops at. */
  async install(onStep?: (step: CompactionStep) => Promise<void> | void): Promise<void> {
    await onStep?.('written');
    await rename(this.#temporary, join(this.#dir, LOG_FILE));
    this.#installed = true;
    await syncDirectory(this.#dir);
    await onStep?.('replaced');
  }

  /** Closes and removes the new file unless it became the log. */
  async discard(): Promise<void> {
    if (this.#installed) return;
    await this.file.close();
    await rm(this.#temporary, { force: true });
  }
}
