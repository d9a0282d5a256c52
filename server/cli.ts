import { errorMessage } from '../src/protocol/errors.ts';
import { parseCliOptions, usage } from './cli-options.ts';
import { demoScopeOf, demoSecret, demoTokens, demoUrl } from './demo.ts';
import { jwtAuthenticator } from './jwt-auth.ts';
import { redactUrl } from './postgres-errors.ts';
import { createSyncServer, type SyncServer } from './sync-server.ts';
import { requireToken } from './token-check.ts';

export interface CliProgram {
  /** How the usage names the command, e.g. `sync-connection-server`. */
  command: string;
  /** The static files served when neither --static-dir nor STATIC_DIR is given; none when absent. */
  defaultStaticDir?: string;
}

/**
 * Runs the server as a command: reads `args` and `env`, starts it, prints where it listens, and
 * shuts it down on SIGINT or SIGTERM. Exits the process with 2 for bad options and 1 when the
 * server cannot start or its store fails.
 */
export async function runCli(args: readonly string[], env: NodeJS.ProcessEnv, program: CliProgram): Promise<void> {
  const help = usage(program.command, program.defaultStaticDir === undefined ? 'none' : program.defaultStaticDir);
  if (args.includes('--help')) {
    process.stdout.write(`${help}\n`);
    process.exit(0);
  }
  const parsed = parseCliOptions(args, env, program.defaultStaticDir);
  if ('error' in parsed) {
    process.stderr.write(`${parsed.error}\n${help}\n`);
    process.exit(2);
  }

  const jwtSecret = parsed.jwtSecret ?? (parsed.demo ? demoSecret() : undefined);
  const authenticate = jwtSecret !== undefined ? jwtAuthenticator({ secret: jwtSecret })
    : parsed.token !== undefined ? requireToken(parsed.token)
    : undefined;

  let server: SyncServer;
  let exitCode = 0;
  try {
    server = await createSyncServer({
      ...parsed.server,
      ...(authenticate === undefined ? {} : { authenticate }),
      ...(parsed.demo ? { scopeOf: demoScopeOf } : {}),
      onStoreNotice: (message) => process.stderr.write(`sync server: ${message}\n`),
      // The store refuses every write after a disk error; reopening it (a new process) reads back
      // what is durable. So exit non-zero for a supervisor to restart the server.
      onStoreFailure: (error) => {
        exitCode = 1;
        shutdown(
          `the change log cannot be written (${error.message}); every client was closed with 1011 ` +
            '"store unavailable" and nothing more is acknowledged. Shutting down and exiting with ' +
            'code 1 so that a supervisor restarts the server',
        );
      },
      onStoreAvailability: (unavailable) => {
        process.stderr.write(unavailable
          ? `sync server: the store is unavailable (${unavailable.message}); clients stay connected, operations get operation_error until it is back\n`
          : 'sync server: the store is available again\n');
      },
    });
  } catch (error) {
    process.stderr.write(`sync server failed to start: ${errorMessage(error)}\n`);
    process.exit(1);
  }
  const running = server;

  function shutdown(why: string): void {
    process.stderr.write(`sync server: ${why}\n`);
    running.close().then(
      () => process.exit(exitCode),
      (error: unknown) => {
        process.stderr.write(`sync server: shutdown failed: ${errorMessage(error)}\n`);
        process.exit(1);
      },
    );
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      // A second signal while shutting down means "now".
      process.once(signal, () => process.exit(1));
      shutdown(`${signal}, shutting down`);
    });
  }
  if (parsed.exitOnStdinEnd) {
    process.stdin.on('end', () => shutdown('stdin closed, shutting down'));
    process.stdin.resume();
  }

  const wildcard = parsed.server.host === '0.0.0.0' || parsed.server.host === '::';
  const url = wildcard ? `http://127.0.0.1:${running.port}` : running.url;
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: running.port, url })}\n`);
  const where = parsed.server.storeUrl === undefined ? `data in ${parsed.server.dataDir}` : `store ${redactUrl(parsed.server.storeUrl)}`;
  const access = parsed.demo ? 'the demo: users alice and bob authenticate with JWTs'
    : parsed.jwtSecret !== undefined ? 'clients authenticate with JWTs signed with SYNC_JWT_SECRET'
    : parsed.token !== undefined ? 'clients authenticate with the token in SYNC_TOKEN'
    : 'authentication OFF: any client and any web page may read and write everything (set SYNC_JWT_SECRET or SYNC_TOKEN to require a token)';
  process.stderr.write(`sync server listening on ${url} (ws ${url.replace('http', 'ws')}${running.path}), ${where}, ${access}\n`);
  if (parsed.demo && jwtSecret !== undefined) {
    // Development only: the secret signs every identity of this server.
    const source = parsed.jwtSecret === undefined ? 'a random development secret, new at every start' : 'SYNC_JWT_SECRET';
    process.stderr.write(`sync server (demo): tokens are signed with ${source}: ${jwtSecret}\n`);
    const tokens = await demoTokens(jwtSecret);
    if (parsed.server.staticDir !== undefined) {
      process.stderr.write(`sync server (demo): open ${demoUrl(url, tokens)}\n`);
    } else {
      // No page is served (the installed command), so the tokens themselves, for a page or client of one's own.
      for (const [user, token] of Object.entries(tokens)) process.stderr.write(`sync server (demo): ${user}'s token: ${token}\n`);
    }
  }
}
