import { expect } from '@open-wc/testing';
import '../src/index.ts';
import type { SyncConnectionElement } from '../src/elements/sync-connection.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from './helpers/e2e.ts';
import { record } from './helpers/events.ts';
import { MockWorkers } from './helpers/mock-worker.ts';
import { Prng, testSeed } from './helpers/prng.ts';
import { waitFor } from './helpers/wait.ts';

/*
 * A protocol fuzzer: thousands of random, mutated and hostile server frames go through the mock
 * server into the real engine (a real worker, a real IndexedDB) behind a <sync-connection>.
 *
 * Every frame is planned together with what PROTOCOL.md says must happen to it, and that plan is
 * the expectation: it is computed from the generator alone, never from the client's parser.
 *   - not JSON, not an object, no string `type`, or a known type with a field of the wrong shape
 *     (a malformed LSN included): one `error` with code `protocol`, nothing applied;
 *   - a well-formed batch: its valid items are applied in order (last write wins) unless its `lsn`
 *     is not greater than the stored one; invalid items are skipped and the frame is reported
 *     once with code `invalid_change`;
 *   - `error` / `sync_error`: an `error` with code `server`;
 *   - any other `type`: a `message` event carrying the frame.
 * A model applies the well-formed batches and is compared at the end with getEntities and
 * `last-lsn`. To replay a failure, put the printed seed into SEED.
 */

const SEED = testSeed(0x5eed_f022);
/** Frames generated at random, on top of the fixed coverage list. */
const RANDOM_FRAMES = 2_600;
/** Frames per `send` command; each chunk ends with a barrier the test waits for. */
const CHUNK_FRAMES = 120;
const CHUNK_CHARS = 3_000_000;
const HUGE = 1 << 20; // 1 MiB strings
const BARRIER_TYPE = 'fuzz_barrier';

// ---- LSNs, parsed by the test's own reading of PROTOCOL.md ------------------------------------

function lsnValue(text: unknown): bigint | undefined {
  if (typeof text !== 'string') return undefined;
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return match ? (BigInt(`0x${match[1]}`) << 32n) + BigInt(`0x${match[2]}`) : undefined;
}

/** `value` as `X/Y`, in a random letter case and with random leading zeros (all valid forms). */
function formatLsn(value: bigint, rng: Prng): string {
  const part = (n: bigint): string => {
    let hex = n.toString(16);
    if (rng.chance(0.5)) hex = hex.toUpperCase();
    const zeros = rng.chance(0.2) ? rng.int(0, 8 - hex.length) : 0;
    return '0'.repeat(zeros) + hex;
  };
  return `${part(value >> 32n)}/${part(value & 0xffff_ffffn)}`;
}

/** Not LSNs by PROTOCOL.md (1 to 8 hex digits, a slash, 1 to 8 hex digits), strings and others. */
const MALFORMED_LSNS: readonly unknown[] = [
  '', '0', '/', '0/', '/0', '0//0', '0/0/0', 'G/0', '0/g', '0x1/0', '123456789/0', '0/123456789',
  ' 0/1', '0/1 ', '0 /1', '0/ 1', '-1/0', '+1/0', '1.5/0', '0/1.0', '0/1\n', '\t0/1', '0\\1', '0|1',
  '\u0660/\u0661', '\uff10/\uff11', '0/1\u0000', 'null', 'undefined', 'NaN', '0/-1', '1/0/', 'ff/ffffffffff',
  0, 1, 1.5, -1, true, false, {}, [], ['0/1'], { hi: 0, lo: 1 },
];

// ---- hostile values ---------------------------------------------------------------------------

/** Objects whose keys are dangerous as plain-object keys; parsed, so the keys are own properties. */
const HOSTILE_JSON = [
  '{"__proto__":{"polluted":"yes"},"a":1}',
  '{"constructor":{"prototype":{"polluted":"yes"}},"b":[1]}',
  '{"__proto__":null}',
  '{"__proto__":[1,2,3],"length":2}',
  '{"toString":"x","valueOf":1,"hasOwnProperty":false,"__defineGetter__":0}',
  '{"then":"not a function","__proto__":{"then":1}}',
] as const;

const KEY_NAMES = ['a', 'b', 'text', 'n', '__proto__', 'constructor', 'prototype', 'toString', '0', '10', '', ' ', 'ü', '\ud83d\ude00'];
const ENTITY_TYPES = ['note', 'task', '__proto__', 'constructor', 'toString', 'ünï', '\ud83d\ude00', 'a/b', ' '];
const ENTITY_IDS = ['1', '2', '3', '4', '5', '6', '7', '8', '0', '-1', '__proto__', 'constructor', 'hasOwnProperty', 'x'.repeat(300), '\ud800'];

/** A value with an own property named `key` (`{ [key]: v }` would set the prototype for __proto__). */
function withOwn(target: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return target;
}

class Generator {
  readonly rng: Prng;
  #hugeLeft = 6;

  constructor(rng: Prng) {
    this.rng = rng;
  }

  string(): string {
    const { rng } = this;
    return rng.weighted<() => string>([
      [6, () => rng.string(rng.int(0, 12))],
      [1, () => rng.string(rng.int(1, 6), 'äöü€\ud83d\ude00\u0000\n"\\\u2028')],
      [1, () => rng.pick(['__proto__', 'constructor', '<script>', '{"type":"x"}', '\ud800', ''])],
    ])();
  }

  data(depth = 0): unknown {
    const { rng } = this;
    if (depth === 0 && this.#hugeLeft > 0 && rng.chance(0.004)) {
      this.#hugeLeft -= 1;
      return { big: 'd'.repeat(HUGE) };
    }
    return rng.weighted<() => unknown>([
      [2, () => null],
      [2, () => rng.chance(0.5)],
      [3, () => rng.int(-1e6, 1e6)],
      [1, () => rng.pick([0.5, -0, 1e308, -1e-300, Number.MAX_SAFE_INTEGER])],
      [4, () => this.string()],
      [depth < 3 ? 2 : 0, () => Array.from({ length: rng.int(0, 4) }, () => this.data(depth + 1))],
      [depth < 3 ? 4 : 0, () => {
        const object: Record<string, unknown> = {};
        for (let i = rng.int(0, 4); i > 0; i--) withOwn(object, rng.pick(KEY_NAMES), this.data(depth + 1));
        return object;
      }],
      [2, () => JSON.parse(rng.pick(HOSTILE_JSON))],
    ])();
  }

  timestamp(): number {
    return this.rng.pick([Date.now(), 0, -1, 1.5, 1_700_000_000_123, this.rng.int(0, 2 ** 40)]);
  }
}

// ---- change items -----------------------------------------------------------------------------

interface ModelChange {
  type: 'update' | 'delete';
  entityType: string;
  entityId: string;
  data?: unknown;
  timestamp?: number;
}

/** A well-formed item: `[item, change]`. */
function validItem(gen: Generator): [Record<string, unknown>, ModelChange] {
  const { rng } = gen;
  const entityType = rng.pick(ENTITY_TYPES);
  const entityId = rng.pick(ENTITY_IDS);
  const change: ModelChange = rng.chance(0.8)
    ? { type: 'update', entityType, entityId, data: gen.data() }
    : { type: 'delete', entityType, entityId };
  if (rng.chance(0.3)) change.timestamp = gen.timestamp();
  let item: Record<string, unknown> = { ...change };
  if (change.type === 'delete' && rng.chance(0.1)) item.data = 'ignored for a delete';
  if (rng.chance(0.1)) withOwn(item, rng.pick(['__proto__', 'constructor', 'lsn', 'extra']), gen.data(2));
  if (rng.chance(0.2)) item = Object.fromEntries(rng.shuffle(Object.entries(item)));
  return [item, change];
}

/** Ways to make an item invalid by PROTOCOL.md's Change type. */
const INVALID_ITEMS: readonly ((base: Record<string, unknown>) => unknown)[] = [
  () => 1,
  () => 'update',
  () => null,
  () => true,
  () => [],
  (base) => [base],
  (base) => without(base, 'entityType'),
  (base) => ({ ...base, entityType: '' }),
  (base) => ({ ...base, entityType: 5 }),
  (base) => ({ ...base, entityType: null }),
  (base) => ({ ...base, entityType: { id: 'x' } }),
  (base) => ({ ...base, entityType: ['note'] }),
  (base) => without(base, 'entityId'),
  (base) => ({ ...base, entityId: '' }),
  (base) => ({ ...base, entityId: 7 }),
  (base) => ({ ...base, entityId: null }),
  (base) => ({ ...base, entityId: {} }),
  (base) => without(base, 'type'),
  (base) => ({ ...base, type: 'rename' }),
  (base) => ({ ...base, type: 'UPDATE' }),
  (base) => ({ ...base, type: 'Delete' }),
  (base) => ({ ...base, type: '' }),
  (base) => ({ ...base, type: 5 }),
  (base) => ({ ...base, type: null }),
  (base) => ({ ...base, type: ['update'] }),
  (base) => without({ ...base, type: 'update' }, 'data'),
  (base) => ({ ...base, timestamp: '1700000000000' }),
  (base) => ({ ...base, timestamp: {} }),
  (base) => ({ ...base, timestamp: true }),
  (base) => ({ ...base, timestamp: [1] }),
];

function without(object: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy = { ...object };
  delete copy[key];
  return copy;
}

function invalidItem(gen: Generator, which?: number): unknown {
  const [base] = validItem(gen);
  const make = which === undefined ? gen.rng.pick(INVALID_ITEMS) : INVALID_ITEMS[which]!;
  return make(base);
}

/** Items for a batch: mostly valid, sometimes with invalid ones mixed in. */
function items(gen: Generator, withInvalid: boolean): { list: unknown[]; changes: ModelChange[]; invalid: number } {
  const { rng } = gen;
  const list: unknown[] = [];
  const changes: ModelChange[] = [];
  let invalid = 0;
  const count = rng.weighted([[1, 0], [6, rng.int(1, 4)], [2, rng.int(5, 25)]] as const);
  for (let i = 0; i < count; i++) {
    if (withInvalid && rng.chance(0.25)) {
      list.push(invalidItem(gen));
      invalid += 1;
    } else {
      const [item, change] = validItem(gen);
      list.push(item);
      changes.push(change);
    }
  }
  if (withInvalid && invalid === 0) {
    list.splice(rng.int(0, list.length), 0, invalidItem(gen));
    invalid = 1;
  }
  return { list, changes, invalid };
}

// ---- frames -----------------------------------------------------------------------------------

/** One frame and what PROTOCOL.md says it must cause. */
interface Planned {
  kind: string;
  text: string;
  /** Reported with code `protocol` and dropped. */
  protocol?: boolean;
  /** A well-formed batch with this many invalid items (reported once, code `invalid_change`). */
  invalidItems?: number;
  /** `error` or `sync_error`: reported with code `server`. */
  server?: boolean;
  /** A type the protocol does not define: a `message` event with this `type`. */
  unknownType?: string;
  /** A well-formed batch or single change. */
  batch?: { changes: ModelChange[]; lsn?: bigint };
}

type FieldKind = 'string' | 'nonEmpty' | 'lsn' | 'number' | 'count' | 'items' | 'any';
interface Field { name: string; kind: FieldKind; required: boolean }

const f = (name: string, kind: FieldKind, required: boolean): Field => ({ name, kind, required });

/** The server-to-client messages of PROTOCOL.md and their fields. */
const SCHEMA: Readonly<Record<string, readonly Field[]>> = {
  sync_request: [],
  pong: [],
  sync_start: [f('lsn', 'lsn', false), f('total', 'count', false)],
  changes: [f('changes', 'items', true), f('lsn', 'lsn', true)],
  batch_update: [f('batchId', 'string', true), f('data', 'items', true), f('lsn', 'lsn', false)],
  sync_data: [f('data', 'items', true), f('lsn', 'lsn', false)],
  entity_update: [f('entityType', 'nonEmpty', true), f('entityId', 'nonEmpty', true), f('data', 'any', true), f('timestamp', 'number', false), f('lsn', 'lsn', false)],
  entity_delete: [f('entityType', 'nonEmpty', true), f('entityId', 'nonEmpty', true), f('timestamp', 'number', false), f('lsn', 'lsn', false)],
  sync_complete: [f('lsn', 'lsn', false)],
  sync_error: [f('message', 'string', true)],
  operation_complete: [f('id', 'string', true), f('lsn', 'lsn', false)],
  operation_error: [f('id', 'string', true), f('message', 'string', true)],
  error: [f('message', 'string', true)],
};
const KNOWN_TYPES = Object.keys(SCHEMA);
const BATCH_TYPES = new Set(['changes', 'batch_update', 'sync_data', 'entity_update', 'entity_delete']);

/**
 * Values of the wrong shape for a field. `null` and absence are wrong only for required fields
 * (PROTOCOL.md does not say whether `null` means "absent" for an optional one, so it is not
 * generated there). A missing `batchId` is left out too: PROTOCOL.md lists it without `?`, but
 * the client accepts a `batch_update` without it, and which one should change is an open question.
 */
function wrongValues(field: Field): readonly { value: unknown; missing?: boolean }[] {
  const v = (value: unknown) => ({ value });
  const missing = field.required && field.name !== 'batchId' ? [{ value: undefined, missing: true }] : [];
  const nullish = field.required ? [v(null)] : [];
  switch (field.kind) {
    case 'string':
      return [v(1), v(true), v({}), v([]), v(['x']), ...nullish, ...missing];
    case 'nonEmpty':
      return [v(''), v(1), v(true), v({}), v(['note']), ...nullish, ...missing];
    case 'lsn':
      return [...MALFORMED_LSNS.map(v), ...nullish, ...missing];
    case 'number':
    case 'count':
      return [v('1'), v('abc'), v(true), v({}), v([1])];
    case 'items':
      return [v({}), v('[]'), v(1), v(true), v({ 0: { type: 'delete', entityType: 'a', entityId: 'b' }, length: 1 }), ...nullish, ...missing];
    case 'any':
      return missing;
  }
}

class FramePlanner {
  readonly gen: Generator;
  readonly rng: Prng;
  /** The highest LSN handed out so far: the generator's idea of the server's log head. */
  #head = 0n;

  constructor(gen: Generator) {
    this.gen = gen;
    this.rng = gen.rng;
  }

  /** A valid LSN for a batch: mostly ahead of the head, sometimes equal or behind (a replay). */
  #lsnFor(): bigint {
    const { rng } = this;
    return rng.weighted<() => bigint>([
      [12, () => {
        const step = rng.chance(0.05) ? BigInt(rng.int(1, 8)) << 32n : BigInt(rng.int(1, 1 << 20));
        this.#head += step;
        return this.#head;
      }],
      [2, () => this.#head],
      [3, () => this.#head === 0n ? 0n : BigInt(Math.floor(rng.next() * Number(this.#head)))],
      [1, () => 0n],
    ])();
  }

  #fieldValue(type: string, field: Field, batch: { changes: ModelChange[]; lsn?: bigint; invalid: number }): unknown {
    const { rng, gen } = this;
    switch (field.kind) {
      case 'string':
        return field.name === 'message' && rng.chance(0.01) ? 'm'.repeat(HUGE) : gen.string();
      case 'nonEmpty':
        return rng.pick(field.name === 'entityId' ? ENTITY_IDS : ENTITY_TYPES);
      case 'lsn': {
        const lsn = this.#lsnFor();
        if (BATCH_TYPES.has(type)) batch.lsn = lsn;
        return formatLsn(lsn, rng);
      }
      case 'number':
        return gen.timestamp();
      case 'count':
        return rng.int(0, 10_000);
      case 'items': {
        const made = items(gen, rng.chance(0.15));
        batch.changes = made.changes;
        batch.invalid = made.invalid;
        return made.list;
      }
      case 'any':
        return gen.data();
    }
  }

  /**
   * A well-formed frame of a known type, or (with `breakField`) the same frame with that field of
   * the wrong shape. Optional fields are present at random.
   */
  known(type: string, breakField?: { field: Field; value: unknown; missing?: boolean }): Planned {
    const { rng } = this;
    const frame: Record<string, unknown> = {};
    const batch: { changes: ModelChange[]; lsn?: bigint; invalid: number } = { changes: [], invalid: 0 };
    for (const field of SCHEMA[type]!) {
      if (breakField?.field === field) {
        if (!breakField.missing) frame[field.name] = breakField.value;
        continue;
      }
      if (!field.required && rng.chance(0.4)) continue;
      frame[field.name] = this.#fieldValue(type, field, batch);
    }
    let entity: ModelChange | undefined;
    if (!breakField && (type === 'entity_update' || type === 'entity_delete')) {
      entity = { type: type === 'entity_update' ? 'update' : 'delete', entityType: frame.entityType as string, entityId: frame.entityId as string };
      if (type === 'entity_update') entity.data = frame.data;
      if (typeof frame.timestamp === 'number') entity.timestamp = frame.timestamp;
    }
    if (type === 'operation_complete' || type === 'operation_error') {
      if (breakField?.field.name !== 'id') frame.id = `op-${rng.string(8)}`; // no such operation
    }
    if (rng.chance(0.08)) withOwn(frame, rng.pick(['__proto__', 'constructor', 'extra', 'toString']), this.gen.data(2));
    const ordered = rng.chance(0.3)
      ? Object.fromEntries(rng.shuffle([['type', type] as [string, unknown], ...Object.entries(frame)]))
      : withOwnFirst(frame, 'type', type);
    const text = JSON.stringify(ordered);
    const kind = breakField ? `malformed ${type}.${breakField.field.name}` : type;
    if (breakField) return { kind, text, protocol: true };
    const planned: Planned = { kind, text };
    if (type === 'error' || type === 'sync_error') planned.server = true;
    if (BATCH_TYPES.has(type)) {
      planned.batch = entity ? { changes: [entity] } : { changes: batch.changes };
      if (batch.lsn !== undefined) planned.batch.lsn = batch.lsn;
      if (batch.invalid > 0) planned.invalidItems = batch.invalid;
    }
    return planned;
  }

  /** A frame with a type PROTOCOL.md does not define. */
  unknown(type?: string): Planned {
    const { rng } = this;
    const name = type ?? rng.pick([
      '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'CHANGES', 'changes ', ' pong',
      'Sync_Complete', '', 'entity-update', 'op\u0000', '\ud83d\ude00', `custom_${rng.string(5)}`, 'then',
    ]);
    const frame = withOwnFirst({}, 'type', name);
    if (rng.chance(0.5)) frame.payload = this.gen.data();
    if (rng.chance(0.2)) withOwn(frame, '__proto__', { type: 'changes', polluted: true });
    if (rng.chance(0.2)) frame.changes = items(this.gen, true).list; // not a batch: not applied
    return { kind: 'unknown type', text: JSON.stringify(frame), unknownType: name };
  }

  /** Any known frame, at random (valid ones dominate, as on a real connection). */
  randomKnown(): Planned {
    const { rng } = this;
    const type = rng.weighted([
      [10, 'changes'], [4, 'batch_update'], [4, 'sync_data'], [6, 'entity_update'], [3, 'entity_delete'],
      [1, 'sync_start'], [1, 'sync_complete'], [1, 'sync_request'], [1, 'pong'], [1, 'operation_complete'],
      [1, 'operation_error'], [1, 'error'], [1, 'sync_error'],
    ] as const);
    return this.known(type);
  }

  /** A known type with one field of the wrong shape. */
  randomMalformedField(): Planned {
    const { rng } = this;
    const type = rng.pick(KNOWN_TYPES.filter((t) => SCHEMA[t]!.length > 0));
    const field = rng.pick(SCHEMA[type]!.filter((fd) => wrongValues(fd).length > 0));
    return this.known(type, { field, ...rng.pick(wrongValues(field)) });
  }

  /** Not JSON: a strict prefix of a frame's text (so never valid JSON), or mangled text. */
  notJson(): Planned {
    const { rng } = this;
    const source = this.randomKnown().text;
    const text = rng.weighted<() => string>([
      [5, () => source.slice(0, rng.int(0, source.length - 1))],
      [3, () => mangle(source, rng)],
      [1, () => rng.pick(['', ' ', 'undefined', 'NaN', "{'type':'pong'}", '{"type":"pong",}', '{type:"pong"}', '[', '\u0000', '\ufeff{"type":"pong"}'])],
      [1, () => rng.string(rng.int(1, 40), '{}[]",:0123abc \\/')],
    ])();
    if (parses(text)) return this.notJson();
    return { kind: 'not JSON', text, protocol: true };
  }

  /** JSON, but not an object with a string `type`. */
  noStringType(): Planned {
    const { rng } = this;
    const text = rng.pick([
      '1', '-0', '"changes"', 'null', 'true', 'false', '[]', '[{"type":"pong"}]', '{}', '{"type":1}', '{"type":null}',
      '{"type":true}', '{"type":["changes"]}', '{"type":{"type":"pong"}}', '{"Type":"pong"}', '{"__proto__":{"type":"pong"}}',
      '{"changes":[],"lsn":"0/1"}', '"{\\"type\\":\\"pong\\"}"',
    ]);
    return { kind: 'no string type', text, protocol: true };
  }
}

/** `frame` with `key` first; every key stays an own property (Object.assign would set a prototype). */
function withOwnFirst(frame: Record<string, unknown>, key: string, value: unknown): Record<string, unknown> {
  const out = withOwn({}, key, value);
  for (const [name, item] of Object.entries(frame)) withOwn(out, name, item);
  return out;
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Replaces, inserts or deletes a few characters. */
function mangle(text: string, rng: Prng): string {
  let out = text;
  for (let edits = rng.int(1, 3); edits > 0; edits--) {
    const at = rng.int(0, Math.max(0, out.length - 1));
    const ch = rng.pick(['{', '}', '[', ']', '"', ':', ',', '\\', 'x', ' ', '\u0000']);
    out = rng.weighted<() => string>([
      [1, () => out.slice(0, at) + ch + out.slice(at + 1)],
      [1, () => out.slice(0, at) + ch + out.slice(at)],
      [1, () => out.slice(0, at) + out.slice(at + 1)],
    ])();
  }
  return out;
}

/**
 * The plan: a fixed list that covers every field's wrong shapes, every malformed LSN, every
 * invalid item, the hostile keys and the 1 MiB cases, then random frames, all shuffled together.
 */
function planFrames(rng: Prng): Planned[] {
  const gen = new Generator(rng);
  const planner = new FramePlanner(gen);
  const fixed: Planned[] = [];
  for (const type of KNOWN_TYPES) {
    fixed.push(planner.known(type));
    for (const field of SCHEMA[type]!) {
      for (const wrong of wrongValues(field)) fixed.push(planner.known(type, { field, ...wrong }));
    }
  }
  INVALID_ITEMS.forEach((_, which) => {
    const [good, change] = validItem(gen);
    fixed.push({
      kind: `invalid item #${which}`,
      text: JSON.stringify({ type: 'sync_data', data: [invalidItem(gen, which), good] }),
      invalidItems: 1,
      batch: { changes: [change] },
    });
  });
  for (const hostile of HOSTILE_JSON) {
    const data = JSON.parse(hostile) as unknown;
    fixed.push({
      kind: 'hostile data',
      text: JSON.stringify({ type: 'batch_update', batchId: '__proto__', data: [{ type: 'update', entityType: '__proto__', entityId: 'constructor', data }] }),
      batch: { changes: [{ type: 'update', entityType: '__proto__', entityId: 'constructor', data }] },
    });
    fixed.push({
      kind: 'hostile frame',
      text: hostile.replace(/^\{/, '{"type":"changes","changes":[],"lsn":"0/0",'),
      batch: { changes: [], lsn: 0n },
    });
  }
  // 1 MiB strings: in data, in an unknown frame, in a server error, as garbage and truncated.
  const big = 'x'.repeat(HUGE);
  fixed.push({
    kind: 'huge data',
    text: JSON.stringify({ type: 'entity_update', entityType: 'note', entityId: 'huge', data: { big } }),
    batch: { changes: [{ type: 'update', entityType: 'note', entityId: 'huge', data: { big } }] },
  });
  fixed.push({ kind: 'huge unknown', text: JSON.stringify({ type: 'huge_custom', big }), unknownType: 'huge_custom' });
  fixed.push({ kind: 'huge type', text: JSON.stringify({ type: big }), unknownType: big });
  fixed.push({ kind: 'huge error', text: JSON.stringify({ type: 'error', message: big }), server: true });
  fixed.push({ kind: 'huge not JSON', text: `{"type":"changes","changes":[{"data":"${big}`, protocol: true });
  fixed.push({ kind: 'huge not JSON', text: big, protocol: true });
  fixed.push({ kind: 'huge malformed', text: JSON.stringify({ type: 'changes', changes: [], lsn: big }), protocol: true });

  const random: Planned[] = [];
  for (let i = 0; i < RANDOM_FRAMES; i++) {
    random.push(rng.weighted<() => Planned>([
      [45, () => planner.randomKnown()],
      [15, () => planner.randomMalformedField()],
      [12, () => planner.notJson()],
      [8, () => planner.noStringType()],
      [8, () => planner.unknown()],
    ])());
  }
  // The fixed frames go in at random places; the random ones keep their order (LSNs mostly grow).
  const all = [...random];
  for (const planned of fixed) all.splice(rng.int(0, all.length), 0, planned);
  return all;
}

// ---- the model --------------------------------------------------------------------------------

interface ModelEntity { data: string; timestamp: number | undefined }

class Model {
  lsn = 0n;
  readonly entities = new Map<string, Map<string, ModelEntity>>();
  readonly types = new Set<string>();
  /** Every applied change, in order, as `type entityType entityId`. */
  readonly applied: string[] = [];

  apply(batch: { changes: ModelChange[]; lsn?: bigint }): void {
    if (batch.lsn !== undefined && batch.lsn <= this.lsn) return; // a replay: skipped whole
    for (const change of batch.changes) {
      this.types.add(change.entityType);
      let ofType = this.entities.get(change.entityType);
      if (!ofType) this.entities.set(change.entityType, ofType = new Map());
      if (change.type === 'update') {
        ofType.set(change.entityId, { data: JSON.stringify(change.data), timestamp: change.timestamp });
      } else {
        ofType.delete(change.entityId);
      }
      this.applied.push(describeChange(change));
    }
    if (batch.lsn !== undefined) this.lsn = batch.lsn;
  }
}

function describeChange(change: { type: string; entityType: string; entityId: string }): string {
  return JSON.stringify([change.type, change.entityType, change.entityId]);
}

// ---- the test ---------------------------------------------------------------------------------

describe('protocol fuzzing through the mock server into the real engine', () => {
  let mock: MockWorkers;
  let dbName: string;
  let element: SyncConnectionElement | undefined;

  beforeEach(() => {
    mock = new MockWorkers();
    dbName = uniqueDbName();
  });

  afterEach(async () => {
    element?.remove();
    element = undefined;
    mock.terminateAll();
    await deleteDatabase(dbName);
  });

  it('survives thousands of random, malformed and hostile frames, reports each bad one and stores exactly the valid ones', async function () {
    this.timeout(30_000);
    const rng = new Prng(SEED);
    const plan = planFrames(rng);
    const expected = {
      protocol: plan.filter((p) => p.protocol).length,
      invalidChange: plan.filter((p) => (p.invalidItems ?? 0) > 0).length,
      server: plan.filter((p) => p.server).length,
      unknown: plan.filter((p) => p.unknownType !== undefined).map((p) => p.unknownType!),
    };
    const model = new Model();
    for (const planned of plan) if (planned.batch) model.apply(planned.batch);
    const kinds = new Map<string, number>();
    for (const planned of plan) kinds.set(planned.kind, (kinds.get(planned.kind) ?? 0) + 1);
    const label = `fuzz seed ${SEED} (0x${SEED.toString(16)})`;
    console.log(`${label}: ${plan.length} frames, ${expected.protocol} malformed, ${expected.invalidChange} with invalid items, ` +
      `${plan.filter((p) => p.batch).length} batches, ${expected.unknown.length} unknown types, ${expected.server} server errors`);

    element = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    element.createWorker = mock.create;
    const seen = record(element, ['error', 'message', 'changes', 'disconnected', 'connected']);
    document.body.append(element);
    const el = element;
    await waitFor(() => el.getAttribute('status') === 'connected', 'status connected');

    let barriers = 0;
    const barrier = async (): Promise<void> => {
      const tag = `b${barriers++}`;
      await mock.send({ type: BARRIER_TYPE, tag });
      await seen.waitFor('message', ({ message }) => message.tag === tag, { timeout: 15_000 })
        .catch((error: Error) => { throw new Error(`barrier ${tag}: ${error.message} (${label})`); });
    };
    let sent = 0;
    while (sent < plan.length) {
      const chunk: string[] = [];
      let chars = 0;
      while (sent < plan.length && chunk.length < CHUNK_FRAMES && (chunk.length === 0 || chars + plan[sent]!.text.length <= CHUNK_CHARS)) {
        chars += plan[sent]!.text.length;
        chunk.push(plan[sent++]!.text);
      }
      await mock.send(...chunk);
      await barrier();
    }

    const why = (what: string): string => `${what} (${label})`;
    const errors = seen.of('error');
    const count = (code: string) => errors.filter((e) => e.code === code).length;
    const unexpected = errors.filter((e) => !['protocol', 'invalid_change', 'server'].includes(e.code));
    expect(unexpected.map((e) => `${e.code}: ${e.message.slice(0, 200)}`), why('no worker, storage or closed error')).to.deep.equal([]);
    expect(mock.workers.length, why('one worker')).to.equal(1);
    expect(mock.connections, why('the same mock connection')).to.equal(1);
    expect(seen.of('disconnected'), why('never disconnected')).to.have.length(0);
    expect(el.getAttribute('status'), why('still connected')).to.equal('connected');
    expect(count('protocol'), why('every malformed frame reported with code protocol')).to.equal(expected.protocol);
    expect(count('invalid_change'), why('every batch with invalid items reported once')).to.equal(expected.invalidChange);
    expect(count('server'), why('every error / sync_error reported with code server')).to.equal(expected.server);

    const messages = seen.of('message').map(({ message }) => message.type).filter((type) => type !== BARRIER_TYPE);
    expect(messages.length, why('one message event per unknown type')).to.equal(expected.unknown.length);
    expect(messages.every((type, i) => type === expected.unknown[i]), why('the unknown frames, in order')).to.equal(true);

    // The changes events list exactly the model's applied changes, in order: nothing twice, no replay.
    const applied = seen.of('changes').flatMap(({ changes }) => changes.map(describeChange));
    expect(applied.length, why('as many changes applied as the model')).to.equal(model.applied.length);
    const firstDiff = applied.findIndex((entry, i) => entry !== model.applied[i]);
    expect(firstDiff, why(`changes events differ from the model at ${firstDiff}: ${applied[firstDiff]} vs ${model.applied[firstDiff]}`)).to.equal(-1);

    expect(lsnValue(el.getAttribute('last-lsn')), why(`last-lsn ${el.getAttribute('last-lsn')}`)).to.equal(model.lsn);

    for (const type of model.types) {
      const stored = (await el.getEntities(type))
        .map((e) => ({ id: e.entityId, data: JSON.stringify(e.data), timestamp: e.timestamp }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const wanted = [...(model.entities.get(type) ?? new Map<string, ModelEntity>())]
        .map(([id, e]) => ({ id, data: e.data, timestamp: e.timestamp }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      expect(stored.map((e) => e.id), why(`the ids of type ${JSON.stringify(type)}`)).to.deep.equal(wanted.map((e) => e.id));
      stored.forEach((entity, i) => {
        const want = wanted[i]!;
        expect(entity.data === want.data, why(`data of ${type}/${entity.id}: ${entity.data.slice(0, 120)} vs ${want.data.slice(0, 120)}`)).to.equal(true);
        expect(entity.timestamp, why(`timestamp of ${type}/${entity.id}`)).to.equal(want.timestamp);
      });
    }
    // Nothing leaked into the page's prototypes through the events' data.
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted'), why('Object.prototype untouched')).to.equal(false);
    console.log(`${label}: passed; ${model.applied.length} changes applied, ${errors.length} errors, final LSN ${el.getAttribute('last-lsn')}; ` +
      `kinds: ${[...kinds].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, n]) => `${k}=${n}`).join(', ')}`);
  });

  // A change IndexedDB cannot clone (nested ~3,000 deep) is valid JSON to the server. Found by
  // the fuzzer: the client used to fail the batch, reconnect, be replayed it and fail forever.
  it('gets past a batch whose data IndexedDB cannot store (a value nested 3,000 deep), when the server replays it', async function () {
    this.timeout(20_000);
    element = createSyncElement({ url: MockWorkers.url, 'db-name': dbName, 'backoff-initial': '20', 'backoff-max': '50' });
    element.createWorker = mock.create;
    const el = element;
    const depth = 3_000;
    const deep = `{"type":"changes","lsn":"0/10","changes":[{"type":"update","entityType":"d","entityId":"deep","data":${'['.repeat(depth)}${']'.repeat(depth)}}]}`;
    const next = { type: 'changes', lsn: '0/20', changes: [{ type: 'update', entityType: 'd', entityId: 'after', data: 1 }] };
    // The server's part: every new connection is sent what follows the client's LSN (0/0 here).
    let served = 0;
    el.addEventListener('connected', () => {
      served += 1;
      void mock.send(deep, next);
    });
    document.body.append(el);
    await waitFor(() => el.getAttribute('last-lsn') === '0/20', 'last-lsn 0/20', 8_000).catch(() => undefined);
    expect(el.getAttribute('last-lsn'), `after ${served} connection(s)`).to.equal('0/20');
    expect((await el.getEntity('d', 'after'))?.data).to.equal(1);
  });
});
