import { describe, expect, it } from 'vitest';
import { describeDialError, describeUpgradeRefusal } from '../../agent/dial-failure.js';

describe('describeUpgradeRefusal', () => {
  it.each([
    [401, undefined, /credentials \(401\): check CLIENT_ID and CLIENT_TOKEN/, 0],
    [429, '60', /repeated failed logins \(429\), for 60 s: check CLIENT_ID and CLIENT_TOKEN/, 60_000],
    [429, undefined, /repeated failed logins \(429\): check/, 0],
    [503, '1', /draining \(503\)/, 1_000],
    [404, undefined, /HTTP 404: check PROXY_URL/, 0],
  ] as const)('%i with retry-after %s', (status, retryAfter, message, minDelayMs) => {
    const r = describeUpgradeRefusal(status, retryAfter);
    expect(r.message).toMatch(message);
    expect(r.minDelayMs).toBe(minDelayMs);
  });

  it('ignores a retry-after that is not whole seconds, and caps a huge one at 15 minutes', () => {
    expect(describeUpgradeRefusal(429, 'Wed, 21 Oct 2026 07:28:00 GMT').minDelayMs).toBe(0);
    expect(describeUpgradeRefusal(429, '-5').minDelayMs).toBe(0);
    expect(describeUpgradeRefusal(429, '999999').minDelayMs).toBe(15 * 60_000);
  });
});

describe('describeDialError', () => {
  const err = (message: string, code?: string): Error & { code?: string } => Object.assign(new Error(message), code ? { code } : {});

  it('points an untrusted CA at NODE_EXTRA_CA_CERTS', () => {
    const text = describeDialError(err('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
    expect(text).toMatch(/^unable to verify the first certificate \(UNABLE_TO_VERIFY_LEAF_SIGNATURE: .*does not trust; set NODE_EXTRA_CA_CERTS/);
    expect(describeDialError(err('self-signed certificate in certificate chain', 'SELF_SIGNED_CERT_IN_CHAIN'))).toMatch(/NODE_EXTRA_CA_CERTS/);
  });

  it('points a wrong host name or an expired certificate at PROXY_URL and the certificate', () => {
    expect(describeDialError(err("Hostname/IP does not match certificate's altnames", 'ERR_TLS_CERT_ALTNAME_INVALID'))).toMatch(
      /another host name; check PROXY_URL and the certificate\)$/,
    );
    expect(describeDialError(err('certificate has expired', 'CERT_HAS_EXPIRED'))).toMatch(/expired; check PROXY_URL/);
  });

  it('leaves other errors as they are', () => {
    expect(describeDialError(err('connect ECONNREFUSED 127.0.0.1:1', 'ECONNREFUSED'))).toBe('connect ECONNREFUSED 127.0.0.1:1');
    expect(describeDialError(err('boom'))).toBe('boom');
  });
});
