import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../protocol/tunnel-error.js';
import type { ServerConfig } from './server-config.js';

/** The certificate and key both listeners serve, read and checked at start. */
export interface TlsMaterial {
  /** PEM as read (the leaf first, then any intermediates). */
  cert: Buffer;
  key: Buffer;
  /** The leaf certificate, for its validity dates and names. */
  leaf: X509Certificate;
}

/**
 * Reads POSTERN_TLS_CERT and POSTERN_TLS_KEY, or returns undefined when
 * neither is set. Throws a ConfigError naming the setting for: only one of
 * the two set, a file that cannot be read, a file that is not PEM of the
 * right kind (an encrypted key counts: the server has no passphrase to
 * give), and a key that does not belong to the certificate. Messages name
 * the file, never its content.
 */
export function loadTlsMaterial(config: Pick<ServerConfig, 'tlsCert' | 'tlsKey'>): TlsMaterial | undefined {
  const { tlsCert, tlsKey } = config;
  if (!tlsCert && !tlsKey) return undefined;
  if (!tlsCert) throw new ConfigError('POSTERN_TLS_CERT', 'is required with POSTERN_TLS_KEY (path of a PEM certificate file)');
  if (!tlsKey) throw new ConfigError('POSTERN_TLS_KEY', 'is required with POSTERN_TLS_CERT (path of a PEM private key file)');
  const cert = readPem('POSTERN_TLS_CERT', tlsCert);
  const key = readPem('POSTERN_TLS_KEY', tlsKey);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new ConfigError('POSTERN_TLS_CERT', `${tlsCert} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(
      'POSTERN_TLS_KEY',
      `${tlsKey} holds no readable PEM private key (expected an unencrypted -----BEGIN PRIVATE KEY----- or RSA/EC key)`,
    );
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new ConfigError('POSTERN_TLS_KEY', `the key in ${tlsKey} does not belong to the certificate in ${tlsCert}`);
  }
  return { cert, key, leaf };
}

function readPem(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(setting, `cannot read ${path} (${code})`);
  }
}

/** Why the certificate should not be served now, or undefined if it is within its dates. */
export function certificateDateProblem(leaf: X509Certificate, now = new Date()): string | undefined {
  if (now < leaf.validFromDate) return `not valid before ${leaf.validFromDate.toISOString()}`;
  if (now > leaf.validToDate) return `expired on ${leaf.validToDate.toISOString()}`;
  return undefined;
}
