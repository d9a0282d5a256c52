/**
 * Reads what PostgreSQL's `pgoutput` plugin (protocol version 1, `messages 'true'`) emits for a
 * publication without tables: per committed transaction a Begin, its logical messages and a
 * Commit. Only whole transactions are returned; anything else in the stream is skipped.
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

/** Groups the output rows of `pg_logical_slot_peek_binary_changes` into committed transactions. */
export function decodeTransactions(rows: readonly Buffer[]): DecodedTransaction[] {
  const transactions: DecodedTransaction[] = [];
  let open: DecodedMessage[] | undefined;
  for (const data of rows) {
    switch (data[0]) {
      case BEGIN:
        open = [];
        break;
      case MESSAGE:
        // A message outside a transaction (non-transactional) is not a write: skipped.
        if (open) open.push(decodeMessage(data));
        break;
      case COMMIT:
        if (open) {
          transactions.push({ commitLsn: data.readBigUInt64BE(2), endLsn: data.readBigUInt64BE(10), messages: open });
        }
        open = undefined;
        break;
      default:
        break;
    }
  }
  return transactions;
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
    content: data.subarray(contentStart, contentStart + length),
  };
}
