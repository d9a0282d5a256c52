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

/** The field when `is` accepts it; the fallback when it is absent and there is one. */
function field<T>(
  obj: Record<string, unknown>,
  key: string,
  fallback: T | undefined,
  is: (value: unknown) => value is T,
  expected: string,
): T {
  const value = obj[key];
  if (value === undefined && fallback !== undefined) return fallback;
  if (!is(value)) fail(`"${key}" must be ${expected}`);
  return value;
}

const isString = (value: unknown): value is string => typeof value === 'string';
const isFiniteNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isBoolean = (value: unknown): value is boolean => typeof value === 'boolean';

export function text(obj: Record<string, unknown>, key: string, fallback?: string): string {
  return field(obj, key, fallback, isString, 'a string');
}

export function nonEmpty(obj: Record<string, unknown>, key: string): string {
  const value = text(obj, key);
  if (value.length === 0) fail(`"${key}" must not be empty`);
  return value;
}

export function finite(obj: Record<string, unknown>, key: string, fallback?: number): number {
  return field(obj, key, fallback, isFiniteNumber, 'a finite number');
}

export function positive(obj: Record<string, unknown>, key: string, fallback?: number): number {
  const value = finite(obj, key, fallback);
  if (value <= 0) fail(`"${key}" must be positive`);
  return value;
}

export function bool(obj: Record<string, unknown>, key: string, fallback?: boolean): boolean {
  return field(obj, key, fallback, isBoolean, 'a boolean');
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
