/**
 * What the tests of the framework helpers share: clients and elements on reference servers, and
 * a source that counts the queries made on it.
 */
import type { ObserveListener, ObserveOptions } from '../../src/client/live-query.ts';
import type { SyncEntity } from '../../src/client/pending-layer.ts';
import { WorkerSyncService } from '../../src/client/sync-service.ts';
import type { SyncConnectionElement } from '../../src/elements/sync-connection.ts';
import type { EntitySource } from '../../src/frameworks/live-rows.ts';
import { createSyncElement, deleteDatabase, uniqueDbName } from '../helpers/e2e.ts';
import type { ReferenceServer } from '../helpers/reference-server.ts';

/** A source that counts the live queries a helper started on it and stopped. */
export interface CountedSource extends EntitySource {
  readonly started: number;
  readonly stopped: number;
}

export function counted(source: EntitySource): CountedSource {
  let started = 0;
  let stopped = 0;
  return {
    get started() { return started; },
    get stopped() { return stopped; },
    observe(entityType: string, listener: ObserveListener, options?: ObserveOptions) {
      started += 1;
      const stop = source.observe(entityType, listener, options);
      return () => {
        stopped += 1;
        stop();
      };
    },
  };
}

/**
 * Clients of the reference server, each on a database of its own, cleaned up and deleted after
 * each test of the enclosing `describe`.
 */
export function useClients(server: ReferenceServer): () => WorkerSyncService {
  const made: WorkerSyncService[] = [];
  afterEach(async () => {
    for (const service of made.splice(0)) {
      await service.cleanup();
      await deleteDatabase(service.dbName);
    }
  });
  return () => {
    const service = new WorkerSyncService({ url: server.wsUrl, dbName: uniqueDbName(), backoffInitial: 50, backoffMax: 300 });
    made.push(service);
    return service;
  };
}

/**
 * `<sync-connection>` elements on a server's URL, each on a database of its own, in the document
 * until the end of each test of the enclosing `describe`.
 */
export function useElements(): (url: string) => SyncConnectionElement {
  const made: SyncConnectionElement[] = [];
  afterEach(async () => {
    for (const element of made.splice(0)) {
      element.remove();
      await deleteDatabase(element.dbName);
    }
  });
  return (url) => {
    const element = createSyncElement({ url, 'db-name': uniqueDbName() });
    document.body.append(element);
    made.push(element);
    return element;
  };
}

/** The entity ids of some rows, in order. */
export const ids = (rows: readonly SyncEntity[] | undefined): string[] => rows?.map((row) => row.entityId) ?? [];
