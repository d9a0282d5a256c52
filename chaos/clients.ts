/**
 * The chaos run's browser clients. A client is one database (so one client id and one outbox)
 * open in one or more tabs of one origin: its tabs elect a leader that holds the connection, the
 * others follow. Every tab queues operations; the ledger keeps what each one was and how it
 * ended, so that the end can say what the server must have applied.
 */
import type { Browser, Page } from 'puppeteer-core';
import type { MountOptions, Outcome, PlannedOperation, ReportedError, TabStatus } from './page/types.ts';
import type { PageServer } from './page-server.ts';

/** How an operation ended, as far as the page could tell. */
export type Fate =
  /** queued; no answer yet */
  | 'in-flight'
  | 'acknowledged'
  /** rejected; `code` says why */
  | 'rejected'
  /** its tab closed before the answer, but the shared outbox held it: another tab must send it */
  | 'orphaned'
  /** its tab closed before the answer and before the outbox was seen to hold it: applied at most once */
  | 'unknown';

export interface LedgerEntry {
  operation: PlannedOperation;
  client: string;
  fate: Fate;
  code?: string;
  message?: string;
}

export class Ledger {
  readonly entries = new Map<string, LedgerEntry>();

  plan(client: string, operations: readonly PlannedOperation[]): void {
    for (const operation of operations) this.entries.set(operation.id, { operation, client, fate: 'in-flight' });
  }

  settle(outcomes: readonly Outcome[]): void {
    for (const outcome of outcomes) {
      const entry = this.entries.get(outcome.id);
      if (!entry) throw new Error(`a page settled an operation it never planned: ${outcome.id}`);
      if (outcome.state === 'acknowledged') entry.fate = 'acknowledged';
      else Object.assign(entry, { fate: 'rejected', code: outcome.code, message: outcome.message });
    }
  }

  orphan(ids: readonly string[], stored: ReadonlySet<string>): void {
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (entry?.fate === 'in-flight') entry.fate = stored.has(id) ? 'orphaned' : 'unknown';
    }
  }
}

const CALL_TIMEOUT_MS = 30_000;

/** Calls `window.chaos[method](...args)` in the page. */
async function call<T>(page: Page, method: string, ...args: unknown[]): Promise<T> {
  const run = page.evaluate(
    (name: string, values: unknown[]) => (globalThis as unknown as { chaos: Record<string, (...a: unknown[]) => unknown> }).chaos[name]!(...values),
    method, args,
  ) as Promise<T>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the page did not answer ${method} within ${CALL_TIMEOUT_MS} ms`)), CALL_TIMEOUT_MS);
  });
  try {
    return await Promise.race([run, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export interface ClientSpec {
  name: string;
  /** Which store's servers it talks to, for the checks at the end. */
  store: string;
  tabs: number;
  wsUrl: string;
}

export class Tab {
  readonly name: string;
  readonly page: Page;
  closed = false;

  constructor(name: string, page: Page) {
    this.name = name;
    this.page = page;
  }

  status(): Promise<TabStatus> {
    return call<TabStatus>(this.page, 'status');
  }
}

export interface WritingPace {
  intervalMs: number;
  maxInFlight: number;
}

export class ChaosClient {
  readonly spec: ClientSpec;
  readonly dbName: string;
  readonly tabs: Tab[] = [];
  readonly errors = new Map<string, number>();
  /** `error` events whose message was empty. */
  unexplained = 0;
  /** Errors in a page's own code (its `pageerror`), each once. */
  readonly pageErrors: string[] = [];
  #opened = 0;
  readonly #seed: number;
  readonly #browser: Browser;
  readonly #pages: PageServer;
  readonly #ledger: Ledger;
  readonly #pace: WritingPace;
  #writing = true;

  constructor(spec: ClientSpec, seed: number, browser: Browser, pages: PageServer, ledger: Ledger, pace: WritingPace) {
    this.spec = spec;
    this.dbName = `chaos-${spec.name}`;
    this.#seed = seed;
    this.#browser = browser;
    this.#pages = pages;
    this.#ledger = ledger;
    this.#pace = pace;
  }

  get live(): Tab[] {
    return this.tabs.filter((tab) => !tab.closed);
  }

  async open(): Promise<void> {
    for (let i = 0; i < this.spec.tabs; i++) await this.openTab();
  }

  /** Opens one more tab on the client's database; it queues operations at once. */
  async openTab(): Promise<Tab> {
    this.#opened += 1;
    const name = `${this.spec.name}${this.#opened}`;
    const page = await this.#browser.newPage();
    page.on('pageerror', (error) => {
      const text = `${name}: ${error instanceof Error ? error.message : String(error)}`;
      if (!this.pageErrors.includes(text)) this.pageErrors.push(text);
    });
    page.on('error', (error) => this.pageErrors.push(`${name} crashed: ${error.message}`));
    await page.evaluateOnNewDocument(this.#pages.injector);
    await page.goto(this.#pages.url);
    // Polled on a timer: a page in the background gets no animation frames.
    await page.waitForFunction('globalThis.chaos !== undefined', { polling: 100, timeout: CALL_TIMEOUT_MS });
    const options: MountOptions = { wsUrl: this.spec.wsUrl, dbName: this.dbName, tab: name, seed: (this.#seed ^ Math.imul(this.#opened, 0x9e3779b1)) >>> 0, heartbeatMs: 1000 };
    await call(page, 'mount', options);
    const tab = new Tab(name, page);
    this.tabs.push(tab);
    if (this.#writing) await call(page, 'write', this.#pace.intervalMs, this.#pace.maxInFlight);
    return tab;
  }

  /** Takes what the tab's page queued and settled since the last time into the ledger. */
  async harvest(tab: Tab): Promise<string[]> {
    const report = await call<{ planned: PlannedOperation[]; settled: Outcome[]; inFlight: string[]; errors: ReportedError[] }>(tab.page, 'harvest');
    this.#ledger.plan(this.spec.name, report.planned);
    this.#ledger.settle(report.settled);
    for (const { code, message } of report.errors) {
      this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
      if (message.trim() === '') this.unexplained += 1;
    }
    return report.inFlight;
  }

  async harvestAll(): Promise<void> {
    for (const tab of this.live) await this.harvest(tab);
  }

  /**
   * Closes the tab as a crash or a closed window would (no unload handlers). Its unanswered
   * operations that the shared outbox holds are the other tabs' to send.
   */
  async closeTab(tab: Tab): Promise<void> {
    await call(tab.page, 'stop');
    const inFlight = await this.harvest(tab);
    const stored = new Set(await call<string[]>(tab.page, 'outboxHolds', inFlight));
    // Those that settled between the harvest and the outbox read are taken in before the close.
    const late = await this.harvest(tab);
    tab.closed = true;
    await tab.page.close({ runBeforeUnload: false });
    this.#ledger.orphan(late, stored);
  }

  /** The tab that holds the connection, if one does now. */
  async leader(): Promise<Tab | undefined> {
    for (const tab of this.live) {
      if ((await tab.status()).role === 'leader') return tab;
    }
    return undefined;
  }

  async stopWriting(): Promise<void> {
    this.#writing = false;
    for (const tab of this.live) await call(tab.page, 'stop');
  }

  crashWorker(): Promise<void> {
    return call(this.#anyTab().page, 'crashWorker');
  }

  abortTransactions(count: number): Promise<void> {
    return call(this.#anyTab().page, 'abortTransactions', count);
  }

  disarm(): Promise<void> {
    return call(this.#anyTab().page, 'disarm');
  }

  statuses(): Promise<TabStatus[]> {
    return Promise.all(this.live.map((tab) => tab.status()));
  }

  entities(tab: Tab): Promise<{ entityType: string; entityId: string; data: unknown; pending: boolean }[]> {
    return call(tab.page, 'entities');
  }

  #anyTab(): Tab {
    const tab = this.live[0];
    if (!tab) throw new Error(`client ${this.spec.name} has no open tab`);
    return tab;
  }
}
