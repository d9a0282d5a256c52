export interface NetworkStatus {
  online: boolean;
  /** From the Network Information API, where the browser has it. */
  effectiveType?: string;
  downlink?: number;
  rtt?: number;
}

/** What the browser says about the network now. */
export function getNetworkStatus(): NetworkStatus {
  const nav = globalThis.navigator as
    | (Navigator & { connection?: { effectiveType?: string; downlink?: number; rtt?: number } })
    | undefined;
  const connection = nav?.connection;
  const status: NetworkStatus = { online: nav?.onLine ?? true };
  if (connection?.effectiveType !== undefined) status.effectiveType = connection.effectiveType;
  if (connection?.downlink !== undefined) status.downlink = connection.downlink;
  if (connection?.rtt !== undefined) status.rtt = connection.rtt;
  return status;
}
