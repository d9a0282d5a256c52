import type { DetailedHTMLProps, HTMLAttributes } from 'react';
import type {
  ChangesEvent,
  ConnectedEvent,
  StateChangeEvent,
  SyncCompletedEvent,
  SyncConnectionElement,
  SyncErrorEvent,
} from 'sync-connection';

/**
 * <sync-connection> in JSX. React 19 sets `url` as a property and adds an `on<name>` prop as a
 * listener for the event named exactly `<name>` (case-sensitive), so the event props are
 * lowercase: `onsync_completed`, `onerror`. (`onError` is React's own synthetic event, which
 * never sees the element's non-bubbling `error`.)
 */
interface SyncConnectionProps extends DetailedHTMLProps<HTMLAttributes<SyncConnectionElement>, SyncConnectionElement> {
  url?: string;
  'db-name'?: string;
  onconnected?: (event: ConnectedEvent) => void;
  onstate_change?: (event: StateChangeEvent) => void;
  onsync_completed?: (event: SyncCompletedEvent) => void;
  onchanges?: (event: ChangesEvent) => void;
  onerror?: (event: SyncErrorEvent) => void;
}

declare module 'react' {
  namespace JSX {
    interface IntrinsicElements {
      'sync-connection': SyncConnectionProps;
    }
  }
}
