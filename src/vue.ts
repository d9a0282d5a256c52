/**
 * Vue 3 helpers (Vue is an optional peer dependency; no other entry imports it):
 * `import { useEntities } from 'sync-connection/vue'`.
 */
export { useEntities } from './frameworks/vue-entities.ts';
export type { EntitySource } from './frameworks/live-rows.ts';
export type { SyncEntity } from './client/pending-layer.ts';
export type { ObserveOptions } from './client/live-query.ts';
