/**
 * The public entry: the element API. Importing it registers `<sync-connection>` and
 * `<sync-status>` (the provider first, so a status element never misses its context); nothing
 * else happens at import. The client without an element is `sync-connection/service`; the
 * older `SyncClient` API and the migration helpers are `sync-connection/compat`.
 */
import { SyncConnectionElement } from './elements/sync-connection.ts';
import { SyncStatusElement } from './elements/sync-status.ts';

SyncConnectionElement.define();
SyncStatusElement.define();

export * from './element.ts';
