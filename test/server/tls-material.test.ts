import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateDateProblem, loadTlsMaterial } from '../../server/tls-material.js';
import { makeTestPki, type TestPki } from '../helpers/certs.js';
import { Cleanup } from '../helpers/cleanup.js';

const cleanup = new Cleanup();
let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki(cleanup);
});
afterAll(() => cleanup.run());

describe('loadTlsMaterial', () => {
  it('is off when neither file is set', () => {
    expect(loadTlsMaterial({ tlsCert: undefined, tlsKey: undefined })).toBeUndefined();
  });

  it('reads a matching certificate and key', () => {
    const m = loadTlsMaterial({ tlsCert: pki.server.cert, tlsKey: pki.server.key })!;
    expect(m.leaf.subject).toContain('CN=server');
    expect(m.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(certificateDateProblem(m.leaf)).toBeUndefined();
    expect(certificateDateProblem(m.leaf, new Date(Date.now() + 10 * 86_400_000))).toMatch(/^expired on /);
    expect(certificateDateProblem(m.leaf, new Date(0))).toMatch(/^not valid before /);
  });

  it.each([
    [{ tlsCert: 'CERT', tlsKey: undefined }, /^POSTERN_TLS_KEY: is required with POSTERN_TLS_CERT/],
    [{ tlsCert: undefined, tlsKey: 'KEY' }, /^POSTERN_TLS_CERT: is required with POSTERN_TLS_KEY/],
    [{ tlsCert: '/nonexistent/cert.pem', tlsKey: 'KEY' }, /^POSTERN_TLS_CERT: cannot read \/nonexistent\/cert\.pem \(ENOENT\)$/],
    [{ tlsCert: 'CERT', tlsKey: '/nonexistent/key.pem' }, /^POSTERN_TLS_KEY: cannot read \/nonexistent\/key\.pem \(ENOENT\)$/],
    [{ tlsCert: 'KEY', tlsKey: 'KEY' }, /^POSTERN_TLS_CERT: .* holds no PEM certificate/],
    [{ tlsCert: 'CERT', tlsKey: 'CERT' }, /^POSTERN_TLS_KEY: .* holds no readable PEM private key/],
    [{ tlsCert: 'CERT', tlsKey: 'OTHER_KEY' }, /^POSTERN_TLS_KEY: the key in .* does not belong to the certificate in /],
    [{ tlsCert: 'GARBAGE', tlsKey: 'KEY' }, /^POSTERN_TLS_CERT: .* holds no PEM certificate/],
    [{ tlsCert: 'CERT', tlsKey: 'ENCRYPTED' }, /^POSTERN_TLS_KEY: .* holds no readable PEM private key \(expected an unencrypted/],
  ])('refuses %o with a message naming the setting', (names, message) => {
    const garbage = join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const encrypted = join(pki.dir, 'encrypted.pem');
    writeFileSync(
      encrypted,
      '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGjMF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBDXe0eU5WqOhbmR0qzP\n-----END ENCRYPTED PRIVATE KEY-----\n',
    );
    const paths: Record<string, string> = {
      CERT: pki.server.cert,
      KEY: pki.server.key,
      OTHER_KEY: pki.otherServer.key,
      GARBAGE: garbage,
      ENCRYPTED: encrypted,
    };
    const resolve = (v: string | undefined): string | undefined => (v === undefined ? undefined : (paths[v] ?? v));
    expect(() => loadTlsMaterial({ tlsCert: resolve(names.tlsCert), tlsKey: resolve(names.tlsKey) })).toThrow(message);
  });

  it('names an unreadable file without printing any of its content', () => {
    const secretKey = join(pki.dir, 'unreadable.key');
    writeFileSync(secretKey, 'PRIVATE STUFF');
    chmodSync(secretKey, 0o000);
    let message = '';
    try {
      loadTlsMaterial({ tlsCert: pki.server.cert, tlsKey: secretKey });
    } catch (err) {
      message = (err as Error).message;
    }
    // Root reads any file; then the content is refused as a key instead. Either way: named, not printed.
    expect(message).toMatch(/^POSTERN_TLS_KEY: (cannot read .*unreadable\.key \(EACCES\)|.*unreadable\.key holds no readable PEM private key)/);
    expect(message).not.toContain('PRIVATE STUFF');
  });
});
