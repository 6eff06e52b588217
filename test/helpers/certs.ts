import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import type { Cleanup } from './cleanup.js';

/** Paths of a PEM certificate and its unencrypted private key. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A private certificate authority in a temp dir that issues leaf certificates. */
export interface TestCa extends CertFiles {
  /** Issues a server certificate (serverAuth) for these names, signed by this CA. */
  issue(name: string, altNames?: { dns?: string[]; ips?: string[] }): CertFiles;
}

/** Test PKI: a private CA, a server certificate for localhost/127.0.0.1, and a second, unrelated CA. */
export interface TestPki {
  dir: string;
  ca: TestCa;
  /** For localhost and 127.0.0.1, signed by `ca`. */
  server: CertFiles;
  /** A CA nobody trusts, with its own localhost certificate. */
  otherCa: TestCa;
  otherServer: CertFiles;
}

/** Two days: long enough for any run, short enough that a leaked file is useless soon. */
const DAYS = '2';
/** P-256: fast to generate (RSA keys take tens of ms each on a slow box). */
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a CA (self-signed, CA:TRUE) named `name` in `dir`, files `<name>-ca.crt` / `.key`. */
export function makeCa(dir: string, name: string): TestCa {
  const cert = join(dir, `${name}-ca.crt`);
  const key = join(dir, `${name}-ca.key`);
  openssl(
    [
      'req', '-x509', ...KEY_ARGS, '-keyout', key, '-out', cert, '-days', DAYS, '-subj', `/CN=Postern test CA ${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  let serial = 1;
  return {
    cert,
    key,
    issue(leafName, altNames = { dns: ['localhost'], ips: ['127.0.0.1'] }) {
      const leafCert = join(dir, `${name}-${leafName}.crt`);
      const leafKey = join(dir, `${name}-${leafName}.key`);
      const csr = join(dir, `${name}-${leafName}.csr`);
      const ext = join(dir, `${name}-${leafName}.ext`);
      const sans = [...(altNames.dns ?? []).map((d) => `DNS:${d}`), ...(altNames.ips ?? []).map((i) => `IP:${i}`)];
      writeFileSync(
        ext,
        [
          'basicConstraints=CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment',
          'extendedKeyUsage=serverAuth',
          ...(sans.length ? [`subjectAltName=${sans.join(',')}`] : []),
        ].join('\n'),
      );
      openssl(['req', '-new', ...KEY_ARGS, '-keyout', leafKey, '-out', csr, '-subj', `/CN=${leafName}`], dir);
      openssl(
        ['x509', '-req', '-in', csr, '-CA', cert, '-CAkey', key, '-set_serial', String(serial++), '-days', DAYS, '-out', leafCert, '-extfile', ext],
        dir,
      );
      return { cert: leafCert, key: leafKey };
    },
  };
}

/**
 * A fresh test PKI in a temp dir, removed by `cleanup`: a private CA with a
 * server certificate for localhost and 127.0.0.1, and an unrelated CA with
 * its own certificate for the same names (what a client must refuse).
 */
export function makeTestPki(cleanup: Cleanup): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'postern-pki-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const ca = makeCa(dir, 'private');
  const otherCa = makeCa(dir, 'other');
  return { dir, ca, server: ca.issue('server'), otherCa, otherServer: otherCa.issue('server') };
}

/**
 * An undici dispatcher that trusts `caFile` (only), for the test process's
 * own HTTPS calls: NODE_EXTRA_CA_CERTS is read at process start, so the test
 * process itself cannot use it. Closed by `cleanup`.
 */
export function trustingDispatcher(cleanup: Cleanup, caFile: string): Agent {
  const agent = new Agent({ connect: { ca: readFileSync(caFile) } });
  cleanup.add(() => agent.close());
  return agent;
}
