/** One change to one entity, as it travels from the server to the client. */
export interface UpdateChange {
  type: 'update';
  entityType: string;
  entityId: string;
  /** The whole new value. */
  data: unknown;
  /** Milliseconds since the epoch, when the server wrote it. */
  timestamp?: number;
}

export interface DeleteChange {
  type: 'delete';
  entityType: string;
  entityId: string;
  timestamp?: number;
}

export type Change = UpdateChange | DeleteChange;

/** A change item that was skipped because it is not a valid {@link Change}. */
export interface InvalidChange {
  /** Position of the item in its batch. */
  index: number;
  reason: string;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/** Checks one untrusted change item; returns the typed change or the reason it is invalid. */
export function parseChange(item: unknown): Change | string {
  if (!isRecord(item)) return 'change is not an object';
  const { type, entityType, entityId, timestamp } = item;
  if (!nonEmptyString(entityType)) return 'entityType must be a non-empty string';
  if (!nonEmptyString(entityId)) return 'entityId must be a non-empty string';
  // An optional field that is null is absent (protocol 1.1).
  if (timestamp !== undefined && timestamp !== null && (typeof timestamp !== 'number' || !Number.isFinite(timestamp))) {
    return 'timestamp must be a finite number';
  }
  const stamp = typeof timestamp === 'number' ? { timestamp } : {};
  if (type === 'delete') return { type, entityType, entityId, ...stamp };
  if (type === 'update') {
    if (!('data' in item) || item.data === undefined) return 'update without data';
    return { type, entityType, entityId, data: item.data, ...stamp };
  }
  return `unknown change type ${JSON.stringify(type)}`;
}

/** Splits untrusted items into valid changes (in order) and the reasons for the skipped ones. */
export function parseChanges(items: readonly unknown[]): {
  changes: Change[];
  invalid: InvalidChange[];
} {
  const changes: Change[] = [];
  const invalid: InvalidChange[] = [];
  items.forEach((item, index) => {
    const result = parseChange(item);
    if (typeof result === 'string') invalid.push({ index, reason: result });
    else changes.push(result);
  });
  return { changes, invalid };
}
