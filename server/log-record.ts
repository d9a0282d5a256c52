import type { Change } from '../src/protocol/change.ts';
import { formatLSN, type LSN } from '../src/protocol/lsn.ts';
import { CorruptRecordError, type Frame } from './log-reader.ts';
import { decodeChanges, decodeIndex, type RecordIndex } from './record-codec.ts';
import type { ChangeScope } from './scopes.ts';
import type { StoredRecord } from './sync-store.ts';

/** A frame's record index; a frame whose index does not decode is damage at its offset. */
export function decodeIndexOrThrow(frame: Frame): RecordIndex {
  const index = decodeIndex(frame.index, frame.header.changeCount);
  if (typeof index === 'string') throw new CorruptRecordError(frame.start, index);
  return index;
}

/**
 * A record read from the log: its changes are parsed (and checked against its index) only when
 * asked for; a catch-up sends the body's JSON as it is, already checked by its checksum.
 */
export class LogRecord implements StoredRecord {
  readonly lsn: LSN;
  readonly position: bigint;
  readonly changesJson: string;
  readonly #frame: Frame;
  #index: RecordIndex | undefined;
  #changes: Change[] | undefined;

  constructor(frame: Frame, position: bigint) {
    this.#frame = frame;
    this.position = position;
    this.lsn = formatLSN(position);
    this.changesJson = frame.body.toString('utf8');
  }

  get operationId(): string | undefined {
    return this.#recordIndex().operationId;
  }

  get scopes(): readonly ChangeScope[] | undefined {
    return this.#recordIndex().scopes;
  }

  get changes(): Change[] {
    if (this.#changes) return this.#changes;
    const changes = decodeChanges(this.#recordIndex(), this.changesJson);
    if (typeof changes === 'string') throw new CorruptRecordError(this.#frame.start, changes);
    return (this.#changes = changes);
  }

  #recordIndex(): RecordIndex {
    return (this.#index ??= decodeIndexOrThrow(this.#frame));
  }
}
