/**
 * Finds the operation a server refuses as too large. A server closes with 1009 when a frame
 * exceeds its own size limit, which may be smaller than the page's; re-sending the same frames
 * would then fail forever. After such a close the operations that were in flight become suspects
 * and go one at a time, so the next 1009 names the culprit exactly.
 */

/** The close code for "message too big". */
export const MESSAGE_TOO_BIG = 1009;

export const TOO_LARGE_MESSAGE = 'The server refused the operation as too large (close 1009)';

export class OversizeSuspects {
  readonly #suspects = new Set<string>();
  /** A frame nobody acknowledges (a raw `send_message`) was written on the current connection. */
  #unacknowledgedFrame = false;

  /** The in-flight limit: 1 while any suspect remains, so each one is tested alone. */
  window(normal: number): number {
    return this.#suspects.size > 0 ? 1 : normal;
  }

  get testing(): boolean {
    return this.#suspects.size > 0;
  }

  /** Records a frame the server never answers: a 1009 after it cannot be blamed on one operation. */
  rawFrameWritten(): void {
    this.#unacknowledgedFrame = true;
  }

  /** The operation was acknowledged or rejected by the server: its size is fine. */
  settled(id: string): void {
    this.#suspects.delete(id);
  }

  clear(): void {
    this.#suspects.clear();
  }

  /**
   * The connection closed with `code` while `inFlight` were unacknowledged. Returns the id of the
   * operation proven too large, if any: a suspect that was the only frame in question.
   */
  connectionClosed(code: number, inFlight: ReadonlySet<string>): string | undefined {
    const ambiguous = this.#unacknowledgedFrame || inFlight.size !== 1;
    this.#unacknowledgedFrame = false;
    if (code !== MESSAGE_TOO_BIG) return undefined;
    if (!ambiguous) {
      const [only] = inFlight;
      if (only !== undefined && this.#suspects.delete(only)) return only;
    }
    for (const id of inFlight) this.#suspects.add(id);
    return undefined;
  }
}
