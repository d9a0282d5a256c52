import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** One complete line of the log, without its newline; `end` is the byte offset just after it. */
export interface LogLine {
  text: string;
  end: number;
}

export interface OpenedLog {
  log: AppendLog;
  lines: LogLine[];
  /** Bytes of an incomplete last line that were cut away (a write torn by a crash). */
  truncatedBytes: number;
}

/** What the log needs of an open file; a `node:fs/promises` FileHandle is one. */
export interface LogFile {
  readFile(): Promise<Buffer>;
  truncate(length: number): Promise<void>;
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  close(): Promise<void>;
}

/** Opens an existing file for reading and writing (tests pass one whose writes can fail). */
export type OpenLogFile = (path: string) => Promise<LogFile>;

const openForUpdate: OpenLogFile = (path) => open(path, 'r+');

interface PendingWrite {
  bytes: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

const NEWLINE = 0x0a;

/**
 * An append-only file of newline-terminated lines with group commit: appends that arrive while a
 * write is under way are written and fsynced together, and each append's promise settles only
 * once its bytes are on disk. After a failed write or fsync the log refuses every further append
 * for good: what reached the disk is then unknown (a torn line, or pages the kernel dropped), and
 * only reopening the file, which reads it back and cuts a torn line, can tell. Its owner must
 * stop acknowledging writes and reopen it (in practice: restart the process).
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

  private constructor(file: LogFile, size: number) {
    this.#file = file;
    this.#end = size;
    this.#durableEnd = size;
  }

  /** Opens (creating it if needed) the log at `path`, cuts a torn last line and reads the rest. */
  static async open(path: string, openFile: OpenLogFile = openForUpdate): Promise<OpenedLog> {
    await mkdir(dirname(path), { recursive: true });
    const created = await createIfMissing(path);
    if (created) await syncDirectory(dirname(path));
    const file = await openFile(path);
    try {
      const content = await file.readFile();
      const lastNewline = content.lastIndexOf(NEWLINE);
      const keep = lastNewline + 1;
      const truncatedBytes = content.length - keep;
      if (truncatedBytes > 0) {
        await file.truncate(keep);
        await file.datasync();
      }
      return { log: new AppendLog(file, keep), lines: splitLines(content, keep), truncatedBytes };
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Offset just after everything appended so far (durable or not). */
  get end(): number {
    return this.#end;
  }

  /**
   * Queues `bytes` (which must end with a newline) for writing. Returns the offset just after them
   * at once, and a promise that settles when they are durable. Promises settle in append order.
   */
  append(bytes: Buffer): { end: number; durable: Promise<void> } {
    if (this.#closed) throw new Error('log is closed');
    if (this.#failure) throw new Error(`log failed earlier: ${this.#failure.message}`);
    if (bytes.length === 0 || bytes[bytes.length - 1] !== NEWLINE) {
      throw new Error('a log entry must end with a newline');
    }
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

  async #drain(): Promise<void> {
    // Let the appends of the current turn of the event loop join the first group.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#pending.length > 0) {
      const group = this.#pending;
      this.#pending = [];
      const bytes = group.length === 1 ? group[0]!.bytes : Buffer.concat(group.map((w) => w.bytes));
      try {
        await writeFully(this.#file, bytes, this.#durableEnd);
        await this.#file.datasync();
      } catch (cause) {
        const error = cause instanceof Error ? cause : new Error(String(cause));
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

async function createIfMissing(path: string): Promise<boolean> {
  try {
    const file = await open(path, 'wx');
    await file.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Makes a new directory entry durable (POSIX; a no-op where directories cannot be opened). */
async function syncDirectory(path: string): Promise<void> {
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

async function writeFully(file: LogFile, bytes: Buffer, position: number): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await file.write(bytes, offset, bytes.length - offset, position + offset);
    offset += bytesWritten;
  }
}

function splitLines(content: Buffer, length: number): LogLine[] {
  const lines: LogLine[] = [];
  let start = 0;
  while (start < length) {
    const newline = content.indexOf(NEWLINE, start);
    lines.push({ text: content.toString('utf8', start, newline), end: newline + 1 });
    start = newline + 1;
  }
  return lines;
}
