/** Operations from `queueOperation` to the server's acknowledgement, against a raw WebSocket. */
import { launchBrowser, removeServer, startServer, type Row } from './lib/harness.ts';

interface Summary { count: number; seconds: number; perSecond: number; p50: number; p99: number }
interface Pair { ours: Summary; baseline: Summary; durable?: Summary }

const BURST = Number(process.env.BENCH_OPERATIONS ?? 10_000);
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 1_000);

function rows(name: string, pair: Pair): Row[] {
  const baselineName = 'raw WebSocket from the page, nothing stored';
  return [
    { what: `${name}: operations/s`, ours: pair.ours.perSecond, baseline: pair.baseline.perSecond, unit: '/s', better: 'higher', baselineName },
    { what: `${name}: latency p50`, ours: pair.ours.p50, baseline: pair.baseline.p50, unit: 'ms', better: 'lower', baselineName },
    { what: `${name}: latency p99`, ours: pair.ours.p99, baseline: pair.baseline.p99, unit: 'ms', better: 'lower', baselineName },
  ];
}

/** Against the least a client that stores each operation before sending it pays. */
function durableRows(name: string, pair: Pair): Row[] {
  const durable = pair.durable;
  if (!durable) return [];
  const baselineName = 'physical limit: a strict-durability IndexedDB put on the page, then the raw WebSocket';
  return [
    { what: `${name}: latency p50`, ours: pair.ours.p50, baseline: durable.p50, unit: 'ms', better: 'lower', baselineName },
    { what: `${name}: latency p99`, ours: pair.ours.p99, baseline: durable.p99, unit: 'ms', better: 'lower', baselineName },
  ];
}

export async function run(): Promise<Row[]> {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    page.on('pageerror', (error) => console.error('page error:', error));
    await page.goto(`${server.url}/bench/operations.html`);
    await page.waitForFunction('typeof window.benchOperations === "function"');
    const result = await page.evaluate(
      (burst, sequential) => (globalThis as unknown as { benchOperations(o: object): Promise<unknown> }).benchOperations({ burst, sequential }),
      BURST, SEQUENTIAL,
    ) as { burst: Pair; sequential: Pair };
    return [
      ...rows(`${BURST.toLocaleString('en-US')} operations queued at once, to ack`, result.burst),
      ...rows(`${SEQUENTIAL.toLocaleString('en-US')} operations one at a time, to ack`, result.sequential),
      ...durableRows(`${SEQUENTIAL.toLocaleString('en-US')} operations one at a time, to ack`, result.sequential),
    ];
  } finally {
    await browser.close();
    await removeServer(server);
  }
}
