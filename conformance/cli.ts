#!/usr/bin/env node
// The package's `sync-connection-conformance` command.
import { errorMessage } from '../src/protocol/errors.ts';
import { formatResult, formatSummary } from './report.ts';
import { DEFAULT_BOUNDARY_BYTES, DEFAULT_TIMEOUT, runConformance, SetupError } from './run.ts';

const USAGE = `Usage: sync-connection-conformance ws://host/api/sync [options]
Checks a sync server against the server-side rules of the sync-connection protocol (docs/protocol.md),
over the WebSocket alone, writing entities of a random type of its own (deleted again at the end).
Prints PASS, FAIL, WARN (a SHOULD not followed) or SKIP per rule, with why; exits 1 on any FAIL,
2 when it cannot run.
  --token T              the token every sync carries (env SYNC_TOKEN); never printed
  --timeout MS           how long to wait for each expected frame (default ${DEFAULT_TIMEOUT})
  --boundary-bytes N     how much the kit may write to carry the log across a 32-bit LSN
                         boundary (default ${DEFAULT_BOUNDARY_BYTES}); start the server with its log just
                         below one (e.g. at 0/FFFF0000) for that rule to be checked
  --json                 print the results as one JSON object instead
  --help                 print this and exit`;

const args = process.argv.slice(2);
if (args.includes('--help')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

function usageError(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

let url: string | undefined;
let token = process.env.SYNC_TOKEN;
let timeout = DEFAULT_TIMEOUT;
let boundaryBytes = DEFAULT_BOUNDARY_BYTES;
let json = false;
for (let i = 0; i < args.length; i += 1) {
  const arg = args[i]!;
  const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
  if (!match) {
    if (url !== undefined) usageError(`unexpected argument ${JSON.stringify(arg)}`);
    url = arg;
    continue;
  }
  const name = match[1]!;
  if (name === 'json' && match[2] === undefined) {
    json = true;
    continue;
  }
  if (!['token', 'timeout', 'boundary-bytes'].includes(name)) usageError(`unknown option --${name}`);
  const value = match[2] ?? args[++i];
  if (value === undefined) usageError(`--${name} needs a value`);
  if (name === 'token') {
    token = value;
  } else {
    if (!/^\d+$/.test(value) || (name === 'timeout' && Number(value) < 1)) usageError(`--${name} must be a whole number${name === 'timeout' ? ' above 0' : ''}, got ${JSON.stringify(value)}`);
    if (name === 'timeout') timeout = Number(value);
    else boundaryBytes = Number(value);
  }
}
if (url === undefined) usageError('the server\'s sync URL is missing');
if (!/^wss?:\/\//i.test(url)) usageError(`the URL must be ws:// or wss://, got ${JSON.stringify(url)}`);

if (!json) process.stdout.write(`sync-connection-conformance: ${url}\n`);
try {
  const report = await runConformance({
    url,
    ...(token === undefined || token === '' ? {} : { token }),
    timeout,
    boundaryBytes,
    onResult: (result) => {
      if (!json) process.stdout.write(`${formatResult(result)}\n`);
    },
  });
  process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${formatSummary(report)} (entities of type ${report.entityType})\n`);
  process.exit(report.results.some((result) => result.status === 'fail') ? 1 : 0);
} catch (error) {
  process.stderr.write(`sync-connection-conformance: cannot run: ${error instanceof SetupError ? error.message : errorMessage(error)}\n`);
  process.exit(2);
}
