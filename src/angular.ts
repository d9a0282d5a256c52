/**
 * Angular helpers (`@angular/core` is an optional peer dependency; no other entry imports it):
 * `import { injectEntities } from 'sync-connection/angular'`.
 */
export { injectEntities, type EntitySourceInput, type InjectEntitiesOptions } from './frameworks/angular-entities.ts';
export type { EntitySource } from './frameworks/live-rows.ts';
export type { SyncEntity } from './client/pending-layer.ts';
export type { ObserveOptions } from './client/live-query.ts';
