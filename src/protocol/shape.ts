/**
 * Field checks for the parsers of untrusted objects (requests from the page, messages from other
 * tabs): each returns the typed value or throws a `ShapeError` that names the field. A fallback,
 * where a check takes one, is what an absent field means; without one the field is required.
 */
import { isRecord } from './change.ts';

export class ShapeError extends Error {}

export function fail(message: string): never {
  throw new ShapeError(message);
}

/** `parse()`'s value, or the reason a `ShapeError` gave; any other error is thrown on. */
export function attempt<T>(parse: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: parse() };
  } catch (error) {
    if (error instanceof ShapeError) return { ok: false, error: error.message };
    throw error;
  }
}

export function text(obj: Record<string, unknown>, key: string, fallback?: string): string {
  const value = obj[key];
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string') fail(`"${key}" must be a string`);
  return value;
}

export function nonEmpty(obj: Record<string, unknown>, key: string): string {
  const value = text(obj, key);
  if (value.length === 0) fail(`"${key}" must not be empty`);
  return value;
}

export function finite(obj: Record<string, unknown>, key: string, fallback?: number): number {
  const value = obj[key];
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) fail(`"${key}" must be a finite number`);
  return value;
}

export function positive(obj: Record<string, unknown>, key: string, fallback?: number): number {
  const value = finite(obj, key, fallback);
  if (value <= 0) fail(`"${key}" must be positive`);
  return value;
}

export function bool(obj: Record<string, unknown>, key: string, fallback?: boolean): boolean {
  const value = obj[key];
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'boolean') fail(`"${key}" must be a boolean`);
  return value;
}

export function record(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = obj[key];
  if (!isRecord(value)) fail(`"${key}" must be an object`);
  return value;
}

export function list(obj: Record<string, unknown>, key: string): unknown[] {
  const value = obj[key];
  if (!Array.isArray(value)) fail(`"${key}" must be an array`);
  return value;
}

/** One of `values`. */
export function oneOf<T extends string>(obj: Record<string, unknown>, key: string, values: readonly T[]): T {
  const value = obj[key];
  if (!(values as readonly unknown[]).includes(value)) fail(`"${key}" must be one of ${values.join(', ')}`);
  return value as T;
}
