/**
 * `sync-connection/conformance`: the conformance kit as a library, for a server's own tests in
 * Node. The `sync-connection-conformance` command runs the same checks.
 */
export { DEFAULT_BOUNDARY_BYTES, DEFAULT_TIMEOUT, runConformance, SetupError, type ConformanceOptions, type ConformanceReport, type RuleResult } from './run.ts';
export { formatResult, formatSummary } from './report.ts';
export type { Status } from './rule.ts';
