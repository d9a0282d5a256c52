/**
 * Reads what PostgreSQL's `pgoutput` plugin (protocol version 1, `messages 'true'`) emits for a
 * publication without tables: per committed transaction a Begin, its logical messages and a
 * Commit. Only whole transactions come out; anything else in the stream is skipped.
 */

export interface DecodedMessage {
  prefix: string;
  content: Buffer;
}

export interface DecodedTransaction {
  /** Position of the commit record. */
  commitLsn: bigint;
  /** Position just past the commit record: where a consumer resumes after this transaction. */
  endLsn: bigint;
  messages: DecodedMessage[];
}

const BEGIN = 0x42; // 'B'
const COMMIT = 0x43; // 'C'
const MESSAGE = 0x4d; // 'M'

/** Assembles pgoutput messages, one at a time and in stream order, into committed transactions. */
export class TransactionReader {
  #open: DecodedMessage[] | undefined;

  /** True between a Begin and its Commit. */
  get inTransaction(): boolean {
    return this.#open !== undefined;
  }

  /**
   * Takes one message (its bytes are copied where kept, so the caller's buffer may be reused) and
   * returns the transaction it completes, if it is a Commit.
   */
  read(data: Buffer): DecodedTransaction | undefined {
    switch (data[0]) {
      case BEGIN:
        this.#open = [];
        return undefined;
      case MESSAGE:
        // A message outside a transaction (non-transactional) is not a write: skipped.
        this.#open?.push(decodeMessage(data));
        return undefined;
      case COMMIT: {
        const messages = this.#open;
        this.#open = undefined;
        if (!messages) return undefined;
        return { commitLsn: data.readBigUInt64BE(2), endLsn: data.readBigUInt64BE(10), messages };
      }
      default:
        return undefined;
    }
  }

  /** Forgets a transaction left open (its stream ended mid-way: it will be sent again). */
  reset(): void {
    this.#open = undefined;
  }
}

/** 'M', flags (int8), lsn (int64), prefix (C string), length (int32), content. */
function decodeMessage(data: Buffer): DecodedMessage {
  const prefixStart = 10;
  const prefixEnd = data.indexOf(0, prefixStart);
  if (prefixEnd < 0) throw new Error('pgoutput message without a terminated prefix');
  const length = data.readUInt32BE(prefixEnd + 1);
  const contentStart = prefixEnd + 5;
  if (contentStart + length > data.length) throw new Error('pgoutput message shorter than its length');
  return {
    prefix: data.toString('utf8', prefixStart, prefixEnd),
    content: Buffer.from(data.subarray(contentStart, contentStart + length)),
  };
}
