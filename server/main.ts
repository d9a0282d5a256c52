// The server as the repository runs it (`npm start`): the demo's static files are the repository's.
import { fileURLToPath } from 'node:url';
import { runCli } from './cli.ts';

await runCli(process.argv.slice(2), process.env, {
  command: 'node --import tsx server/main.ts',
  defaultStaticDir: fileURLToPath(new URL('..', import.meta.url)),
});
