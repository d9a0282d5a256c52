/**
 * Who uses the embedded log's file when: appends are prepared one after another, in call order;
 * reads run between replacements of the file; a replacement (compaction) waits for the appends
 * queued before it and for the reads under way, and holds both back until it is done.
 */
export class LogTurns {
  /** Settles when every step queued so far has. */
  #steps: Promise<unknown> = Promise.resolve();
  /** Reads under way; a replacement runs only when there are none. */
  #readers = 0;
  #readersGone: (() => void) | undefined;
  /** Set while a replacement runs: reads wait for it. */
  #replacing: Promise<void> | undefined;

  /** Runs `step` after the steps queued before it; one that fails does not hold up the next. */
  next<T>(step: () => Promise<T>): Promise<T> {
    const turn = this.#steps.then(step);
    this.#steps = turn.catch(() => {});
    return turn;
  }

  /** Settles (never rejects) once every step queued so far has. */
  idle(): Promise<unknown> {
    return this.#steps;
  }

  /**
   * Runs `replace` in turn with the steps, after `settle` and once no read is under way; reads
   * asked for meanwhile wait for it.
   */
  replace<T>(settle: () => Promise<void>, replace: () => Promise<T>): Promise<T> {
    let done!: () => void;
    const replacing = new Promise<void>((resolve) => (done = resolve));
    return this.next(async () => {
      this.#replacing = replacing;
      try {
        await settle();
        if (this.#readers > 0) await new Promise<void>((resolve) => (this.#readersGone = resolve));
        return await replace();
      } finally {
        this.#replacing = undefined;
        done();
      }
    });
  }

  /** Runs a read, after any replacement under way and before the next one. */
  async read<T>(read: () => Promise<T>): Promise<T> {
    while (this.#replacing) await this.#replacing;
    this.#readers += 1;
    try {
      return await read();
    } finally {
      this.#readers -= 1;
      if (this.#readers === 0 && this.#readersGone) {
        this.#readersGone();
        this.#readersGone = undefined;
      }
    }
  }
}
