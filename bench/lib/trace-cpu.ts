/**
 * Thread CPU time from a Chromium trace (JSON, categories `toplevel` and `__metadata`): every
 * task a thread runs is a complete event whose `tdur` is the thread's CPU time in it, so the sum
 * over a thread's outermost tasks is the CPU it spent on work, whatever else the machine ran
 * meanwhile (wall-clock durations would count the time the thread waited for a core).
 */

/** Milliseconds of CPU in the trace's window. */
export interface TraceCpu {
  /** The page's renderer: its main thread, the element's worker and its other threads (IO, V8's helpers). */
  pageMain: number;
  worker: number;
  pageOther: number;
  /** Every thread of the browser process, where IndexedDB and the network run in this Chromium. */
  browser: number;
}

interface Task { pid: number; tid: number; ts: number; dur: number; tdur: number }

const WORKER_THREAD = 'DedicatedWorker thread';

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? value as Record<string, unknown> : undefined;
}

function events(trace: unknown): Record<string, unknown>[] {
  const list = Array.isArray(trace) ? trace : record(trace)?.traceEvents;
  if (!Array.isArray(list)) throw new Error('not a Chromium trace: no traceEvents');
  return list.map(record).filter((event): event is Record<string, unknown> => event !== undefined);
}

function nameOf(event: Record<string, unknown>): string | undefined {
  const name = record(event.args)?.name;
  return typeof name === 'string' ? name : undefined;
}

function task(event: Record<string, unknown>): Task | undefined {
  const { ph, pid, tid, ts, dur, tdur } = event;
  if (ph !== 'X' || typeof pid !== 'number' || typeof tid !== 'number' || typeof ts !== 'number'
    || typeof dur !== 'number' || typeof tdur !== 'number') return undefined;
  return { pid, tid, ts, dur, tdur };
}

/** CPU milliseconds per thread (`pid:tid`), counting only tasks not nested in another task. */
function cpuPerThread(tasks: Task[]): Map<string, number> {
  const cpu = new Map<string, number>();
  const busyUntil = new Map<string, number>();
  for (const t of [...tasks].sort((a, b) => a.ts - b.ts)) {
    const thread = `${t.pid}:${t.tid}`;
    if (t.ts < (busyUntil.get(thread) ?? -Infinity)) continue;
    busyUntil.set(thread, t.ts + t.dur);
    cpu.set(thread, (cpu.get(thread) ?? 0) + t.tdur / 1000);
  }
  return cpu;
}

/** When the page made the User Timing mark `name` (`performance.mark`, category `blink.user_timing`), in trace time. */
export function markTime(trace: unknown, name: string): number {
  const mark = events(trace).find((event) => event.name === name && event.cat === 'blink.user_timing');
  if (typeof mark?.ts !== 'number') throw new Error(`the trace has no mark ${name}`);
  return mark.ts;
}

/**
 * The page's renderer is the one renderer that runs a dedicated worker (the bench opens one
 * page at a time); the browser process is named so in the trace's metadata. With `from` and
 * `until` (trace time), only the tasks that start in between count.
 */
export function traceCpu(trace: unknown, from = -Infinity, until = Infinity): TraceCpu {
  const all = events(trace);
  const processNames = new Map<number, string>();
  const threadNames = new Map<string, string>();
  for (const event of all) {
    if (event.ph !== 'M' || typeof event.pid !== 'number') continue;
    const name = nameOf(event);
    if (name === undefined) continue;
    if (event.name === 'process_name') processNames.set(event.pid, name);
    else if (event.name === 'thread_name') threadNames.set(`${event.pid}:${String(event.tid)}`, name);
  }
  const browserPid = [...processNames].find(([, name]) => name === 'Browser')?.[0];
  const workerThreads = [...threadNames].filter(([thread, name]) => name === WORKER_THREAD
    && processNames.get(Number(thread.split(':')[0])) === 'Renderer');
  const pagePids = new Set(workerThreads.map(([thread]) => Number(thread.split(':')[0])));
  if (browserPid === undefined || pagePids.size !== 1) {
    throw new Error(`the trace shows ${browserPid === undefined ? 'no' : 'a'} browser process and ${pagePids.size} renderers with a worker, expected one`);
  }
  const [pagePid] = pagePids;
  const cpu: TraceCpu = { pageMain: 0, worker: 0, pageOther: 0, browser: 0 };
  const tasks = all.map(task).filter((t): t is Task => t !== undefined && t.ts >= from && t.ts < until);
  for (const [thread, ms] of cpuPerThread(tasks)) {
    const pid = Number(thread.split(':')[0]);
    const name = threadNames.get(thread);
    if (pid === browserPid) cpu.browser += ms;
    else if (pid !== pagePid) continue;
    else if (name === 'CrRendererMain') cpu.pageMain += ms;
    else if (name === WORKER_THREAD) cpu.worker += ms;
    else cpu.pageOther += ms;
  }
  return cpu;
}
