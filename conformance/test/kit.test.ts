import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startServer, tempDir, wsUrl } from '../../server/test/helpers.ts';
import { requireToken } from '../../server/token-check.ts';
import { formatResult } from '../report.ts';
import { runConformance, type ConformanceReport } from '../run.ts';
import { RULES } from '../rules.ts';
import { startToyServer, type Faults } from './toy-server.ts';

/** No test may hang the run. */
const BOUNDED = { timeout: 60_000 };
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/** The ids of the rules with this status. */
function having(report: ConformanceReport, status: string): string[] {
  return report.results.filter((result) => result.status === status).map((result) => result.id);
}

/** The report as the command prints it, for an assertion's message. */
function printed(report: ConformanceReport): string {
  return report.results.map(formatResult).join('\n');
}

async function checkToy(t: { after(fn: () => Promise<void>): void }, faults: Faults): Promise<ConformanceReport> {
  const toy = await startToyServer(faults);
  t.after(() => toy.close());
  return runConformance({ url: toy.url, timeout: 5000 });
}

/** Runs the command; resolves with its exit code and output whatever the code. */
async function command(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'conformance/cli.ts', ...args], { cwd: ROOT });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

test('a server written from the protocol passes every rule, across the 32-bit LSN boundary too', BOUNDED, async (t) => {
  const report = await checkToy(t, {});
  assert.deepEqual(report.results.map((result) => result.id), RULES.map((rule) => rule.id));
  assert.deepEqual(having(report, 'pass'), RULES.map((rule) => rule.id), printed(report));
  assert.match(report.results.find((result) => result.id === 'lsn-boundary')!.detail ?? '', /^crossed from 0\/[0-9A-F]+ to 1\/[0-9A-F]+$/);
  assert.match(report.entityType, /^conformance-[0-9a-f]{8}$/);
});

test('a server that replays its whole log on every sync fails exactly the rules about replaying', BOUNDED, async (t) => {
  const report = await checkToy(t, { replayEverything: true });
  assert.deepEqual(having(report, 'fail'), ['replay', 'second-sync', 'lsn-boundary'], printed(report));
  assert.deepEqual(having(report, 'warn'), []);
  assert.match(report.results.find((result) => result.id === 'replay')!.detail!, /the catch-up from \S+ sent a batch at \S+, at or before lastLSN/);
});

test('a server that applies a repeated operation id again fails applied-once alone', BOUNDED, async (t) => {
  const report = await checkToy(t, { applyRepeatsTwice: true });
  assert.deepEqual(having(report, 'fail'), ['applied-once'], printed(report));
  assert.match(report.results.find((result) => result.id === 'applied-once')!.detail!, /the repeat of \S+ on the same connection was answered with lsn \S+, the first with \S+/);
});

test('a server whose LSNs do not carry into the high 32 bits fails lsn-boundary and lsn-order', BOUNDED, async (t) => {
  const report = await checkToy(t, { lsnWithoutCarry: true });
  assert.deepEqual(having(report, 'fail'), ['lsn-boundary', 'lsn-order'], printed(report));
  assert.match(report.results.find((result) => result.id === 'lsn-boundary')!.detail!, /^the LSN went from 0\/FFFF[0-9A-F]{4} to 0\/[0-9A-F]+: LSNs must increase$/);
});

test('the command prints each rule with PASS or FAIL and why, exits 0 or 1, and never prints the token', BOUNDED, async (t) => {
  const right = await startToyServer();
  t.after(() => right.close());
  const passed = await command([right.url, '--token', 'tok-3f9a1c', '--timeout', '5000']);
  assert.equal(passed.code, 0, passed.stdout + passed.stderr);
  const lines = passed.stdout.split('\n').filter((line) => /^(PASS|FAIL|WARN|SKIP) /.test(line));
  assert.deepEqual(lines.map((line) => line.split(/\s+/)[1]), RULES.map((rule) => rule.id));
  assert.ok(lines.every((line) => line.startsWith('PASS ')), passed.stdout);
  assert.match(passed.stdout, /^17 rules: 17 passed, 0 failed, 0 warnings, 0 skipped \(entities of type conformance-[0-9a-f]{8}\)$/m);

  const wrong = await startToyServer({ applyRepeatsTwice: true });
  t.after(() => wrong.close());
  const failed = await command([wrong.url, '--token', 'tok-3f9a1c']);
  assert.equal(failed.code, 1);
  assert.match(failed.stdout, /^FAIL {2}applied-once +\(§6 Ids and repeats, MUST\) .*\n {6}the repeat of \S+ on the same connection was answered with lsn/m);
  assert.match(failed.stdout, /16 passed, 1 failed/);
  for (const output of [passed, failed]) assert.doesNotMatch(output.stdout + output.stderr, /tok-3f9a1c/);

  const json = await command([right.url, '--json']);
  const report = JSON.parse(json.stdout) as ConformanceReport;
  assert.equal(report.results.length, RULES.length);
});

test('the command cannot run without a server, with a refused token or bad arguments: it exits 2 saying why', BOUNDED, async (t) => {
  const server = await startServer(t, { dataDir: await tempDir(t), authenticate: requireToken('right-token') });
  const refused = await command([wsUrl(server), '--token', 'wrong-token']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /cannot run: the server refused the kit's sync, closing with 4001 "unauthorized": is the token right\?/);
  assert.doesNotMatch(refused.stdout + refused.stderr, /wrong-token/);
  const unreachable = await command(['ws://127.0.0.1:1/api/sync']);
  assert.equal(unreachable.code, 2);
  assert.match(unreachable.stderr, /cannot run: cannot open ws:\/\/127\.0\.0\.1:1\/api\/sync: connect ECONNREFUSED/);
  const cases: [string[], RegExp][] = [
    [[], /the server's sync URL is missing/],
    [['http://127.0.0.1/api/sync'], /the URL must be ws:\/\/ or wss:\/\//],
    [['ws://a/', '--timeout', 'soon'], /--timeout must be a whole number above 0/],
    [['ws://a/', '--token'], /--token needs a value/],
    [['ws://a/', '--verbose'], /unknown option --verbose/],
    [['ws://a/', 'ws://b/'], /unexpected argument "ws:\/\/b\/"/],
  ];
  for (const [args, message] of cases) {
    const result = await command(args);
    assert.equal(result.code, 2, args.join(' '));
    assert.match(result.stderr, message);
    assert.match(result.stderr, /Usage: sync-connection-conformance/);
  }
  const help = await command(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: sync-connection-conformance ws:\/\/host\/api\/sync \[options\]/);
});
