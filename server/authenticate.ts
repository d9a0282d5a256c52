/** Decides whether a `sync` may proceed. The token must never be logged or echoed. */
export type Authenticate = (
  token: string | undefined,
  clientId: string,
) => boolean | Promise<boolean>;
