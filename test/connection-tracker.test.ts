import { expect } from '@open-wc/testing';
import { GlobalConnectionTracker } from '../src/client/connection-tracker.ts';
import { uniqueDbName } from './helpers/e2e.ts';
import { waitFor } from './helpers/wait.ts';

describe('GlobalConnectionTracker (the older SyncClient API\'s tracker, on the Web Locks election)', () => {
  it('lets one registration hold a client\'s connection and hands it to the next in line on close', async () => {
    const dbName = uniqueDbName();
    const tabA = new GlobalConnectionTracker(dbName);
    const tabB = new GlobalConnectionTracker(dbName);
    expect(await tabA.isClientConnected('c1')).to.equal(false);
    expect(await tabA.registerConnection('c1')).to.equal(true);
    expect(await tabB.registerConnection('c1')).to.equal(false);
    expect(await tabB.isClientConnected('c1')).to.equal(true);
    expect(await tabB.isAttemptingConnection('c1')).to.equal(true);
    // Another client id is independent.
    expect(await tabB.registerConnection('c2')).to.equal(true);
    tabA.closeConnection('c1');
    await waitFor(async () => !(await tabA.isAttemptingConnection('c1')), 'B to take c1 over');
    expect(await tabA.isClientConnected('c1')).to.equal(true);
    tabB.cleanup();
    await waitFor(async () => !(await tabA.isClientConnected('c1')) && !(await tabA.isClientConnected('c2')), 'everything released');
  });

  it('waitForExistingAttempt resolves when a tab holds the connection, false after its timeout', async () => {
    const dbName = uniqueDbName();
    const waiter = new GlobalConnectionTracker(dbName);
    const holder = new GlobalConnectionTracker(dbName);
    expect(await waiter.waitForExistingAttempt('c', 100)).to.equal(false);
    const waiting = waiter.waitForExistingAttempt('c', 5_000);
    await holder.registerConnection('c');
    expect(await waiting).to.equal(true);
    holder.cleanup();
  });
});
