/**
 * RFC 7386 JSON merge patch: the value `target` becomes when `patch` is applied to it. A patch that
 * is not an object replaces the target whole; an object patch sets each of its members (merging
 * objects recursively) and removes the members it sets to `null`. A target that is not an object
 * counts as `{}`. Neither argument is changed; untouched members keep their identity.
 */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return patch;
  const result: Record<string, unknown> = isPlainObject(target) ? { ...target } : {};
  for (const key of Object.keys(patch)) {
    const value = patch[key];
    if (value === null) {
      delete result[key];
      continue;
    }
    // defineProperty, not assignment: a member named "__proto__" must stay a plain member.
    Object.defineProperty(result, key, {
      value: applyMergePatch(result[key], value),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return result;
}

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
