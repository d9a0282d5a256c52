import { expect } from '@open-wc/testing';
import { SyncError } from '../src/protocol/errors.ts';
import { resolveSyncUrl } from '../src/client/url.ts';

describe('resolveSyncUrl', () => {
  const base = 'https://app.example/shop/index.html';

  it('turns a relative url into wss on an https page', () => {
    expect(resolveSyncUrl('/api/sync', base)).to.equal('wss://app.example/api/sync');
    expect(resolveSyncUrl('api/sync?x=1', base)).to.equal('wss://app.example/shop/api/sync?x=1');
  });

  it('maps http to ws and keeps ws(s) as they are', () => {
    expect(resolveSyncUrl('http://127.0.0.1:8080/api/sync', base)).to.equal('ws://127.0.0.1:8080/api/sync');
    expect(resolveSyncUrl('wss://sync.example/api/sync', base)).to.equal('wss://sync.example/api/sync');
  });

  for (const bad of ['javascript:alert(1)', 'file:///etc/passwd', 'data:text/plain,hi', 'ftp://x/y', '   ', 'http://[::1']) {
    it(`refuses ${JSON.stringify(bad)} with code invalid_url`, () => {
      let caught: unknown;
      try {
        resolveSyncUrl(bad, base);
      } catch (error) {
        caught = error;
      }
      expect(caught).to.be.instanceOf(SyncError);
      expect((caught as SyncError).code).to.equal('invalid_url');
    });
  }
});
