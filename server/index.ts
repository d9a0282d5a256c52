/**
 * `sync-connection/server`: the reference sync server as a library, for Node. Importing it starts
 * nothing. PostgreSQL's driver (`pg`) is loaded only when a `postgres://` store is opened.
 */
export { createSyncServer, SYNC_PATH, type ServerStats, type SyncServer, type SyncServerOptions } from './sync-server.ts';
export { ALL_SCOPES, EVERYONE, type Authenticate, type AuthenticateContext, type Identity } from './identity.ts';
export { jwtAuthenticator, type JwtOptions } from './jwt-auth.ts';
export type { ScopeOf } from './scopes.ts';
export type { Authorize, OperationContext, OperationHandler, WriteRequest } from './write-rules.ts';
export type { InputLimits } from './limits.ts';
export { requireToken } from './token-check.ts';
export { openPostgresStore, openStore, type StoreLocation } from './open-store.ts';
export { FileSyncStore, type FileStoreOptions, type OpenStoreResult } from './store.ts';
export {
  InvalidCursorError,
  StoreRefusedError,
  StoreUnavailableError,
  type AppendResult,
  type Entity,
  type EntityPage,
  type PageOptions,
  type ReadOptions,
  type ScopedEntity,
  type StoreStats,
  type StoredRecord,
  type SyncStore,
  type WriteSequence,
} from './sync-store.ts';
export type { Edit, PatchEdit } from './edit.ts';
