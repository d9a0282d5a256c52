import { errorMessage } from '../src/protocol/errors.ts';
import { Kit, SetupError } from './kit.ts';
import { skip, type Rule, type Status, type Verdict } from './rule.ts';
import { RULES } from './rules.ts';

export { SetupError };

export interface ConformanceOptions {
  /** The server's sync endpoint: `ws://host/api/sync` or `wss://...`. */
  url: string;
  /** Sent in every `sync`; never printed. */
  token?: string;
  /** Ms to wait for each frame the kit expects. Default 10,000. */
  timeout?: number;
  /** Bytes the kit may write to carry the log across a 32-bit LSN boundary. Default 1 MiB. */
  boundaryBytes?: number;
  /** Called with each result as soon as it is known. */
  onResult?: (result: RuleResult) => void;
}

export interface RuleResult {
  id: string;
  title: string;
  section: string;
  level: 'MUST' | 'SHOULD';
  status: Status;
  detail?: string;
}

export interface ConformanceReport {
  url: string;
  /** The entity type the kit wrote its entities under. */
  entityType: string;
  results: RuleResult[];
  /** Why the kit's entities could not all be deleted at the end, if they could not. */
  leftBehind?: string;
}

export const DEFAULT_TIMEOUT = 10_000;
export const DEFAULT_BOUNDARY_BYTES = 1024 * 1024;

/**
 * Checks a server against the server-side rules of the protocol, over the WebSocket alone, one
 * rule after another. The kit writes entities of a random type of its own and deletes them at
 * the end. Rejects with {@link SetupError} when it cannot run at all (no connection, its sync
 * refused); a rule that finds the server wrong fails, it does not reject.
 */
export async function runConformance(options: ConformanceOptions): Promise<ConformanceReport> {
  if (!/^wss?:\/\//i.test(options.url)) throw new SetupError(`the URL must be ws:// or wss://, got ${JSON.stringify(options.url)}`);
  const kit = new Kit({
    url: options.url,
    ...(options.token === undefined ? {} : { token: options.token }),
    timeout: options.timeout ?? DEFAULT_TIMEOUT,
    boundaryBytes: options.boundaryBytes ?? DEFAULT_BOUNDARY_BYTES,
  });
  const results: RuleResult[] = [];
  let leftBehind: string | undefined;
  try {
    for (const rule of RULES) {
      const verdict = await judge(rule, kit);
      const result: RuleResult = {
        id: rule.id, title: rule.title, section: rule.section, level: rule.level, status: verdict.status,
        ...(verdict.detail === undefined ? {} : { detail: verdict.detail }),
      };
      results.push(result);
      options.onResult?.(result);
    }
    await kit.cleanUp().catch((error: unknown) => {
      leftBehind = errorMessage(error);
    });
  } finally {
    kit.closeSessions();
  }
  return { url: options.url, entityType: kit.entityType, results, ...(leftBehind === undefined ? {} : { leftBehind }) };
}

async function judge(rule: Rule, kit: Kit): Promise<Verdict> {
  if (rule.needs === 'synced' && !kit.synced) return skip('needs a sync that reached sync_complete (see catch-up)');
  if (rule.needs === 'writable' && !kit.writable) return skip("needs the kit's writes to be accepted (see write)");
  try {
    return await rule.run(kit);
  } catch (error) {
    if (error instanceof SetupError) throw error;
    return { status: 'fail', detail: errorMessage(error) };
  } finally {
    kit.closeSessions();
  }
}
