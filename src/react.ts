/**
 * React helpers: `useEntities(ref, entityType, options?)`, a live query as the component's state
 * (React 18 or later; React is an optional peer dependency and no other entry imports it), and
 * the JSX typing of `<sync-connection>` and `<sync-status>` for React 19.
 *
 * The typing takes `import type {} from 'sync-connection/react'` once in the app (or listing it in
 * `compilerOptions.types`); importing `useEntities` from here brings it too. The elements
 * themselves are registered by `import 'sync-connection'`; do that before the first render, so
 * that React finds the properties (`token`, `database`, `clientId`) on the element and sets them
 * as properties instead of attributes.
 *
 * How React 19 passes props to a custom element (react-dom `setPropOnCustomElement`):
 * - a prop named `on<name>` with a function value becomes `addEventListener('<name>', fn)`, the
 *   name taken as is (case-sensitive), and `on<name>Capture` the same with `capture`; so the
 *   element's `sync_completed` event is `onsync_completed`, its `error` event `onerror`. The
 *   camel-case `onError`, `onChange`... are React's own synthetic events and never see these.
 * - any other prop that names a property of the element (`url`, `clientId`, `token`) is assigned
 *   to that property; the rest become attributes (`client-id`, `db-name`), `true` as an empty
 *   attribute and `false` removing it.
 */
import type { DetailedHTMLProps, HTMLAttributes } from 'react';
import type { Database } from './client/database.ts';
import type { WorkerEndpoint } from './client/worker-endpoint.ts';
import type { SyncConnectionElement } from './elements/sync-connection.ts';
import type { SyncConnectionEventMap } from './elements/sync-connection-events.ts';
import type { SyncStatusElement } from './elements/sync-status.ts';

export type { SyncConnectionEventMap };
export { useEntities, type EntitySourceRef } from './frameworks/react-entities.ts';
export type { EntitySource } from './frameworks/live-rows.ts';
export type { SyncEntity } from './client/pending-layer.ts';
export type { ObserveOptions } from './client/live-query.ts';

/** `onsync_completed`, `onsync_completedCapture`...: the listener props React 19 attaches. */
export type SyncConnectionEventProps = {
  [K in keyof SyncConnectionEventMap as `on${K}`]?: (event: SyncConnectionEventMap[K]) => void;
} & {
  [K in keyof SyncConnectionEventMap as `on${K}Capture`]?: (event: SyncConnectionEventMap[K]) => void;
};

/** What a page sets on `<sync-connection>`: attributes by their names, properties by theirs. */
export interface SyncConnectionAttributes {
  /** The sync endpoint: relative, http(s) or ws(s). */
  url?: string;
  /** Default: the random id stored in the database. */
  'client-id'?: string;
  /** The `client-id` as a property (needs the element registered before the render). */
  clientId?: string;
  /** IndexedDB database; default `sync-connection`. */
  'db-name'?: string;
  /** `db-name` as a property. */
  dbName?: string;
  /** Do not connect when attached; call `connect()`. */
  manual?: boolean;
  'heartbeat-interval'?: number;
  heartbeatInterval?: number;
  'backoff-initial'?: number;
  backoffInitial?: number;
  'backoff-max'?: number;
  backoffMax?: number;
  /** Sent to the server in `sync`; a property only (needs the element registered before the render). */
  token?: string;
  /** Your own store for the server's changes; a property only. */
  database?: Database;
  /** Replaces the worker factory; a property only. */
  createWorker?: () => WorkerEndpoint;
}

/** The JSX props of `<sync-connection>`: React's HTML props (`ref`, `className`, `children`...) and ours. */
export interface SyncConnectionProps
  extends DetailedHTMLProps<HTMLAttributes<SyncConnectionElement>, SyncConnectionElement>,
    SyncConnectionAttributes,
    SyncConnectionEventProps {}

/** The JSX props of `<sync-status>` (its state comes from the enclosing `<sync-connection>`). */
export type SyncStatusProps = DetailedHTMLProps<HTMLAttributes<SyncStatusElement>, SyncStatusElement>;

declare module 'react' {
  namespace JSX {
    interface IntrinsicElements {
      'sync-connection': SyncConnectionProps;
      'sync-status': SyncStatusProps;
    }
  }
}
