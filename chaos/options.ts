/** The command line of `npm run chaos`. */
import { FAULT_KINDS, type FaultKind } from './faults.ts';

export interface CliOptions {
  faults: number;
  seed: number;
  lanes: number;
  frames: number;
  postgres: 'auto' | 'on' | 'off';
  /** Milliseconds between a tab's operations. */
  intervalMs: number;
  /** The fault kinds to draw from. */
  kinds: FaultKind[];
  verbose: boolean;
  help: boolean;
}

export const USAGE = `Usage: npm run chaos -- [options]
  --faults N       faults to inject (default 1000)
  --seed N         the seed of the fault schedule, the operations and the fuzzers (default: random,
                   printed; pass it back to replay a run)
  --lanes N        faults under way at once, at most (default 3)
  --frames N       frames each fuzzer sends, to the client and to the server (default 10000)
  --postgres MODE  auto (default: when a throwaway cluster can be started), on, off
  --interval-ms N  pause between a tab's operations (default 150)
  --verbose        log every fault as it is injected
  --kinds A,B      draw only these faults: ${FAULT_KINDS.join(', ')} (default all)`;

function whole(name: string, text: string | undefined, min: number): number {
  if (text === undefined || !/^\d+$/.test(text) || Number(text) < min || !Number.isSafeInteger(Number(text))) {
    throw new Error(`${name} needs a whole number of at least ${min}, not ${JSON.stringify(text ?? '')}`);
  }
  return Number(text);
}

export const DEFAULTS: Readonly<CliOptions> = { faults: 1000, seed: -1, lanes: 3, frames: 10_000, postgres: 'auto', intervalMs: 150, kinds: [...FAULT_KINDS], verbose: false, help: false };

export function parseOptions(argv: readonly string[], randomSeed: () => number): CliOptions {
  const options: CliOptions = { ...DEFAULTS, kinds: [...DEFAULTS.kinds] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    switch (flag) {
      case '--faults': options.faults = whole(flag, value, 0); i++; break;
      case '--seed': options.seed = whole(flag, value, 0) >>> 0; i++; break;
      case '--lanes': options.lanes = whole(flag, value, 1); i++; break;
      case '--frames': options.frames = whole(flag, value, 0); i++; break;
      case '--interval-ms': options.intervalMs = whole(flag, value, 10); i++; break;
      case '--postgres':
        if (value !== 'auto' && value !== 'on' && value !== 'off') throw new Error(`--postgres is auto, on or off, not ${JSON.stringify(value ?? '')}`);
        options.postgres = value;
        i++;
        break;
      case '--kinds': {
        const kinds = (value ?? '').split(',');
        const unknown = kinds.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
        if (unknown.length > 0) throw new Error(`--kinds: no fault is called ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
        options.kinds = kinds as FaultKind[];
        i++;
        break;
      }
      case '--verbose': options.verbose = true; break;
      case '--help': options.help = true; break;
      default: throw new Error(`unknown option ${JSON.stringify(flag)}`);
    }
  }
  if (options.seed < 0) options.seed = randomSeed() >>> 0;
  return options;
}
