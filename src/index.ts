/**
 * The public entry. Importing it registers `<sync-connection>` and `<sync-status>` (the provider
 * first, so a status element never misses its context); nothing else happens at import.
 */
import { SyncConnectionElement } from './elements/sync-connection.ts';
import { SyncStatusElement } from './elements/sync-status.ts';

SyncConnectionElement.define();
SyncStatusElement.define();

export * from './element.ts';
export * from './compat.ts';
