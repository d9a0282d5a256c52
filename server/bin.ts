#!/usr/bin/env node
// The package's `sync-connection-server` command.
import { runCli } from './cli.ts';

await runCli(process.argv.slice(2), process.env, { command: 'sync-connection-server' });
