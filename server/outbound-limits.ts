export interface OutboundLimits {
  /** Bytes queued for one socket after which it is dropped. */
  maxBufferedBytes: number;
  /** Frames queued for one socket after which it is dropped. */
  maxBufferedMessages: number;
  /** Ms a socket may leave queued frames unwritten (its client does not read) before it is dropped. */
  stallTimeout: number;
  /** Bytes all queued frames (each shared frame once) and request bodies may hold; past it, the sockets holding most are dropped. */
  memoryBudget: number;
}
