import { createContext } from '@lit/context';
import type { SyncState } from '../protocol/state.ts';

/** The `SyncState` snapshot a `<sync-connection>` provides to its descendants. */
export const syncStateContext = createContext<SyncState>(Symbol.for('sync-connection/state'));
