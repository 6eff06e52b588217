/**
 * What the agent says (and how long it waits) when dialling the server
 * fails: the log line an operator reads first, so it names the likely fix.
 */

/** TLS verification failures Node reports by code, and what usually causes them. */
const TLS_HINTS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is signed by a CA this agent does not trust",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "the server's certificate is signed by a CA this agent does not trust",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate chain ends in a CA this agent does not trust",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is self-signed",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
  CERT_NOT_YET_VALID: "the server's certificate is not valid yet (check the clock)",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate is for another host name",
};

/** The failure text for a dial error; TLS trust failures get the fix appended. */
export function describeDialError(err: Error & { code?: string }): string {
  const hint = err.code ? TLS_HINTS[err.code] : undefined;
  if (!hint) return err.message;
  const fix =
    err.code === 'ERR_TLS_CERT_ALTNAME_INVALID' || err.code?.startsWith('CERT_')
      ? 'check PROXY_URL and the certificate'
      : "set NODE_EXTRA_CA_CERTS to a PEM file with your CA's certificate";
  return `${err.message} (${err.code}: ${hint}; ${fix})`;
}

export interface UpgradeRefusal {
  /** Log text: what happened and what to do. */
  message: string;
  /** Do not dial again sooner than this (the server's retry-after), ms. */
  minDelayMs: number;
}

/** Longest retry-after honoured: a broken header must not park the agent for days. */
const MAX_RETRY_AFTER_MS = 15 * 60_000;

/** The agent's reading of an HTTP answer to its WebSocket upgrade. */
export function describeUpgradeRefusal(status: number, retryAfter: string | undefined): UpgradeRefusal {
  const seconds = retryAfter !== undefined && /^\d+$/.test(retryAfter.trim()) ? Number(retryAfter.trim()) : 0;
  const minDelayMs = Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  switch (status) {
    case 401:
      return { message: 'server refused the credentials (401): check CLIENT_ID and CLIENT_TOKEN', minDelayMs };
    case 429:
      return {
        message: `server is refusing this address after repeated failed logins (429)${seconds ? `, for ${seconds} s` : ''}: check CLIENT_ID and CLIENT_TOKEN`,
        minDelayMs,
      };
    case 503:
      return { message: 'server is draining (503): dialling again', minDelayMs };
    default:
      return { message: `server answered the upgrade with HTTP ${status}: check PROXY_URL`, minDelayMs };
  }
}
