import type { WireOperation } from '../src/protocol/wire.ts';
import type { Edit } from './edit.ts';

/**
 * What one write may hold. Anything over a limit is refused for good (a final `operation_error`,
 * or HTTP 400) with a message that names the limit, before it reaches the store.
 */
export interface InputLimits {
  /** Most UTF-8 bytes of an operation id. */
  maxOperationIdBytes: number;
  /** Most UTF-8 bytes of an operation type. */
  maxOperationTypeBytes: number;
  /** Most UTF-8 bytes of an entity type. */
  maxEntityTypeBytes: number;
  /** Most UTF-8 bytes of an entity id. */
  maxEntityIdBytes: number;
  /** Deepest nesting of objects and arrays in a change's data (the data itself is level 1). */
  maxDepth: number;
  /** Most UTF-8 bytes of one change's data (or patch) as JSON. */
  maxChangeBytes: number;
}

export const DEFAULT_LIMITS: Readonly<InputLimits> = {
  maxOperationIdBytes: 256,
  maxOperationTypeBytes: 64,
  maxEntityTypeBytes: 128,
  maxEntityIdBytes: 512,
  maxDepth: 64,
  maxChangeBytes: 512 * 1024,
};

/** Why an operation's id or type is over its limit; undefined when both are within. */
export function operationProblem(operation: WireOperation, limits: InputLimits): string | undefined {
  return overLength('the operation id', operation.id, limits.maxOperationIdBytes, 'maxOperationIdBytes')
    ?? overLength('the operation type', operation.type, limits.maxOperationTypeBytes, 'maxOperationTypeBytes');
}

/** Why an edit is over a limit; undefined when it is within all of them. */
export function editProblem(edit: Edit, limits: InputLimits): string | undefined {
  const keys = overLength('entityType', edit.entityType, limits.maxEntityTypeBytes, 'maxEntityTypeBytes')
    ?? overLength('entityId', edit.entityId, limits.maxEntityIdBytes, 'maxEntityIdBytes');
  if (keys !== undefined) return keys;
  const value = edit.type === 'patch' ? edit.patch : edit.type === 'update' ? edit.data : undefined;
  if (value === undefined) return undefined;
  const what = edit.type === 'patch' ? 'the patch' : 'the data';
  // Depth first: serializing a value nested thousands of levels deep overflows the stack.
  if (nestedDeeperThan(value, limits.maxDepth)) {
    return `${what} is nested deeper than ${limits.maxDepth} levels (limit maxDepth)`;
  }
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > limits.maxChangeBytes) {
    return `${what} is ${bytes} bytes as JSON, over the limit of ${limits.maxChangeBytes} bytes (maxChangeBytes)`;
  }
  return undefined;
}

function overLength(what: string, text: string, max: number, name: string): string | undefined {
  // A string's UTF-8 length is at most three bytes per UTF-16 unit: skip counting short ones.
  if (text.length * 3 <= max) return undefined;
  const bytes = Buffer.byteLength(text);
  return bytes > max ? `${what} is ${bytes} bytes, over the limit of ${max} bytes (${name})` : undefined;
}

/** True when objects and arrays nest deeper than `max` levels; iterative, so any depth is safe. */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 1 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    if (typeof item.value !== 'object' || item.value === null) continue;
    if (item.depth > max) return true;
    for (const child of Object.values(item.value)) {
      if (typeof child === 'object' && child !== null) stack.push({ value: child, depth: item.depth + 1 });
    }
  }
  return false;
}
