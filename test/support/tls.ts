import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate authority made for one test (openssl CLI, P-256), in `dir`; nothing is committed. */
export interface TestCa {
  name: string;
  certFile: string;
  keyFile: string;
  /** Issues a certificate: `server` for the names given (subjectAltName), else a client certificate. */
  issue(name: string, options?: { serverNames?: string[] }): Promise<{ certFile: string; keyFile: string }>;
}

export async function createTestCa(dir: string, name: string): Promise<TestCa> {
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.crt`);
  await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-key',
    keyFile,
    '-sha256',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    certFile,
  ]);
  return {
    name,
    certFile,
    keyFile,
    async issue(leaf, options = {}) {
      const leafKey = path.join(dir, `${leaf}.key`);
      const leafCsr = path.join(dir, `${leaf}.csr`);
      const leafCert = path.join(dir, `${leaf}.crt`);
      const extFile = path.join(dir, `${leaf}.ext`);
      const server = options.serverNames !== undefined;
      const sans = (options.serverNames ?? []).map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`));
      await writeFile(
        extFile,
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature',
          `extendedKeyUsage=${server ? 'serverAuth' : 'clientAuth'}`,
          ...(server ? [`subjectAltName=${sans.join(',')}`] : []),
          '',
        ].join('\n'),
      );
      await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', leafKey]);
      await run('openssl', ['req', '-new', '-key', leafKey, '-subj', `/CN=${leaf}`, '-out', leafCsr]);
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        leafCsr,
        '-CA',
        certFile,
        '-CAkey',
        keyFile,
        '-CAcreateserial',
        '-days',
        '2',
        '-sha256',
        '-extfile',
        extFile,
        '-out',
        leafCert,
      ]);
      return { certFile: leafCert, keyFile: leafKey };
    },
  };
}
