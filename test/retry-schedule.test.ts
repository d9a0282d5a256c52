import { expect } from '@open-wc/testing';
import { DEFAULT_CONNECTION_OPTIONS } from '../src/protocol/state.ts';
import { retryCeiling, retryDelay, type RetryState } from '../src/worker/retry-schedule.ts';

const DEFAULTS = DEFAULT_CONNECTION_OPTIONS;
const fixed = (r: number) => () => r;
const hidden = (attempt: number, outageAge = 0): RetryState => ({ attempt, outageAge, visible: false });
const visible = (attempt: number, outageAge = 0): RetryState => ({ attempt, outageAge, visible: true });

describe('reconnection schedule', () => {
  it('a hidden page draws with full jitter below a ceiling doubling from backoff-initial to backoff-max, whatever the outage age', () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 12].map((attempt) => retryCeiling(hidden(attempt, 600_000), DEFAULTS));
    expect(ceilings).to.deep.equal([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    expect(retryDelay(hidden(3), DEFAULTS, fixed(0))).to.equal(0);
    expect(retryDelay(hidden(3), DEFAULTS, fixed(0.25))).to.equal(1_000);
    expect(retryDelay(hidden(3), DEFAULTS, fixed(1))).to.equal(4_000);
  });

  it('a visible page holds the ceiling at 1 s through the first 10 s of an outage, with equal jitter', () => {
    // Attempt by attempt as a visible page dials, each delay drawn at the outage age it reached.
    const ages = [0, 300, 1_000, 2_500, 5_000, 9_999, 10_000];
    const ceilings = ages.map((age, attempt) => retryCeiling(visible(attempt + 3, age), DEFAULTS));
    expect(ceilings).to.deep.equal([1_000, 1_000, 1_000, 1_000, 1_000, 1_000, 1_000]);
    expect([0, 1].map((attempt) => retryCeiling(visible(attempt), DEFAULTS))).to.deep.equal([500, 1_000]);
    // Never sooner than half the ceiling: fewer dials for the same wait after the server returns.
    expect(retryDelay(visible(5, 4_000), DEFAULTS, fixed(0))).to.equal(500);
    expect(retryDelay(visible(5, 4_000), DEFAULTS, fixed(0.5))).to.equal(750);
    expect(retryDelay(visible(5, 4_000), DEFAULTS, fixed(1))).to.equal(1_000);
  });

  it('draws every first retry after a drop with full jitter, visible or not', () => {
    expect(retryDelay(visible(0), DEFAULTS, fixed(0))).to.equal(0);
    expect(retryDelay(visible(0), DEFAULTS, fixed(0.5))).to.equal(250);
    expect(retryDelay(visible(0, 600_000), DEFAULTS, fixed(1))).to.equal(500);
    expect(retryDelay(visible(1), DEFAULTS, fixed(0))).to.equal(500);
  });

  it('a visible page lets the ceiling grow to a tenth of the outage age past that, up to backoff-max', () => {
    const ceilings = [20_000, 60_000, 120_000, 300_000, 3_600_000].map((age) => retryCeiling(visible(40, age), DEFAULTS));
    expect(ceilings).to.deep.equal([2_000, 6_000, 12_000, 30_000, 30_000]);
    // The doubling still bounds it: an old outage does not make the first retries slow.
    expect(retryCeiling(visible(1, 600_000), DEFAULTS)).to.equal(1_000);
    expect(retryCeiling(visible(3, 600_000), DEFAULTS)).to.equal(4_000);
  });

  it('scales with backoff-initial: its double is the visible ceiling of a young outage', () => {
    const fast = { backoffInitial: 50, backoffMax: 30_000 };
    expect([0, 1, 2, 8].map((attempt) => retryCeiling(visible(attempt, 500), fast))).to.deep.equal([50, 100, 100, 100]);
    expect(retryCeiling(visible(8, 5_000), fast)).to.equal(500);
    const slow = { backoffInitial: 5_000, backoffMax: 60_000 };
    expect([0, 1, 4].map((attempt) => retryCeiling(visible(attempt, 50_000), slow))).to.deep.equal([5_000, 10_000, 10_000]);
    const capped = { backoffInitial: 500, backoffMax: 800 };
    expect(retryCeiling(visible(4, 0), capped)).to.equal(800);
    expect(retryCeiling(hidden(4, 0), capped)).to.equal(800);
  });

  it('keeps a jitter source that strays outside [0, 1] inside the range', () => {
    expect(retryDelay(visible(2), DEFAULTS, fixed(-3))).to.equal(500);
    expect(retryDelay(visible(0), DEFAULTS, fixed(-3))).to.equal(0);
    expect(retryDelay(visible(2), DEFAULTS, fixed(7))).to.equal(1_000);
    expect(retryDelay(hidden(2), DEFAULTS, fixed(-3))).to.equal(0);
    expect(retryDelay(hidden(2), DEFAULTS, fixed(7))).to.equal(2_000);
  });
});
