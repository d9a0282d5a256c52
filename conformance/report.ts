import type { Status } from './rule.ts';
import type { ConformanceReport, RuleResult } from './run.ts';

const LABEL: Readonly<Record<Status, string>> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };

/** One rule's result: `FAIL  applied-once  (§6 Ids and repeats, MUST) title`, then why, indented. */
export function formatResult(result: RuleResult): string {
  const head = `${LABEL[result.status]}  ${result.id.padEnd(17)} (${result.section}, ${result.level}) ${result.title}`;
  return result.detail === undefined ? head : `${head}\n      ${result.detail}`;
}

/** The closing lines: the counts, and what the kit left behind. */
export function formatSummary(report: ConformanceReport): string {
  const count = (status: Status) => report.results.filter((result) => result.status === status).length;
  const lines = [`${report.results.length} rules: ${count('pass')} passed, ${count('fail')} failed, ${count('warn')} warnings, ${count('skip')} skipped`];
  if (report.leftBehind !== undefined) lines.push(`the kit could not delete all its entities of type ${report.entityType}: ${report.leftBehind}`);
  return lines.join('\n');
}
