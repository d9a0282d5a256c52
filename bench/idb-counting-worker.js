// Imported first by the bench's wrapper of the element's worker (see cost.js): counts that
// worker's IndexedDB writes and transactions before its own module runs.
import { countIndexedDB } from './idb-counting.js';

countIndexedDB(self, 'worker');
