import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { asError } from '../src/protocol/errors.ts';

/** What the log needs of an open file; a `node:fs/promises` FileHandle is one. */
export interface LogFile {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  stat(): Promise<{ size: number }>;
  truncate(length: number): Promise<void>;
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/** Opens an existing file for reading and writing (tests pass one whose writes can fail). */
export type OpenLogFile = (path: string) => Promise<LogFile>;

export const openForUpdate: OpenLogFile = (path) => open(path, 'r+');

interface PendingWrite {
  bytes: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** The most bytes one group commit writes (more than this wait for the next group). */
export const MAX_GROUP_BYTES = 16 * 1024 * 1024;

/**
 * The writing end of an append-only file, with group commit: appends that arrive while a write is
 * under way are written and fsynced together (up to MAX_GROUP_BYTES, or one append alone), and
 * each append's promise settles only once its bytes are on disk. After a failed write or fsync
 * the log refuses every further append for good: what reached the disk is then unknown (a torn
 * record, or pages the kernel dropped), and only reopening the file, which checks it and cuts a
 * torn tail, can tell. Its owner must stop acknowledging writes and reopen it (in practice:
 * restart the process).
 */
export class AppendLog {
  readonly #file: LogFile;
  /** Offset just after the last byte handed to `append`. */
  #end: number;
  /** Offset just after the last byte known to be durable. */
  #durableEnd: number;
  #pending: PendingWrite[] = [];
  #writing: Promise<void> | null = null;
  #failure: Error | null = null;
  #closed = false;

  /** Appends to `file` from `size` on: everything before is taken as durable. */
  constructor(file: LogFile, size: number) {
    this.#file = file;
    this.#end = size;
    this.#durableEnd = size;
  }

  /** Offset just after everything appended so far (durable or not). */
  get end(): number {
    return this.#end;
  }

  /** Offset just after the last byte known to be durable. */
  get durableEnd(): number {
    return this.#durableEnd;
  }

  /**
   * Queues `bytes` for writing. Returns the offset just after them at once, and a promise that
   * settles when they are durable. Promises settle in append order.
   */
  append(bytes: Buffer): { end: number; durable: Promise<void> } {
    if (this.#closed) throw new Error('log is closed');
    if (this.#failure) throw new Error(`log failed earlier: ${this.#failure.message}`);
    if (bytes.length === 0) throw new Error('nothing to append');
    this.#end += bytes.length;
    const durable = new Promise<void>((resolve, reject) => {
      this.#pending.push({ bytes, resolve, reject });
    });
    this.#writing ??= this.#drain();
    return { end: this.#end, durable };
  }

  /** The write or fsync error that made this log refuse appends; null while it works. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Resolves once everything appended so far is durable (or has failed). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.flush();
    await this.#file.close();
  }

  /** The appends of the next write: the oldest first, as many as fit in MAX_GROUP_BYTES. */
  #takeGroup(): PendingWrite[] {
    let count = 0;
    let bytes = 0;
    while (count < this.#pending.length && (count === 0 || bytes + this.#pending[count]!.bytes.length <= MAX_GROUP_BYTES)) {
      bytes += this.#pending[count]!.bytes.length;
      count += 1;
    }
    return this.#pending.splice(0, count);
  }

  async #drain(): Promise<void> {
    // Let the appends of the current turn of the event loop join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#pending.length > 0) {
      const group = this.#takeGroup();
      const bytes = group.length === 1 ? group[0]!.bytes : Buffer.concat(group.map((w) => w.bytes));
      try {
        await writeFully(this.#file, bytes, this.#durableEnd);
        await this.#file.datasync();
      } catch (cause) {
        const error = asError(cause);
        this.#failure = error;
        // Best effort, before anyone hears of the failure: cut away what this group may have
        // left on disk, so that a restart does not bring back writes that were refused. If this
        // fails too, a restart may find some of them (never acknowledged, so at worst applied
        // and then re-sent: an operation id is answered again, not applied twice).
        try {
          await this.#file.truncate(this.#durableEnd);
          await this.#file.datasync();
        } catch {
          // The log is failed either way.
        }
        for (const write of [...group, ...this.#pending]) write.reject(error);
        this.#pending = [];
        break;
      }
      this.#durableEnd += bytes.length;
      for (const write of group) write.resolve();
    }
    this.#writing = null;
  }
}

/** Creates an empty file at `path` (its directory too) when there is none; true if it did. */
export async function createIfMissing(path: string): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true });
  let file: FileHandle;
  try {
    file = await open(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  await file.close();
  await syncDirectory(dirname(path));
  return true;
}

/** Makes a new directory entry durable (POSIX; a no-op where directories cannot be opened). */
export async function syncDirectory(path: string): Promise<void> {
  let dir: FileHandle | undefined;
  try {
    dir = await open(path, 'r');
    await dir.sync();
  } catch {
    // Not supported on this platform; the file's own fsyncs still apply.
  } finally {
    await dir?.close();
  }
}

/** Writes all of `bytes` at `position` (a write may take fewer bytes than asked). */
export async function writeFully(file: LogFile, bytes: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset, position + offset);
    offset += bytesWritten;
  }
}
