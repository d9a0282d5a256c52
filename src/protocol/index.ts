export * from './lsn.ts';
export * from './change.ts';
export * from './wire.ts';
export * from './state.ts';
export type * from './worker-messages.ts';
export * from './merge-patch.ts';
export * from './effects.ts';
