/**
 * Test certificates made with the openssl command line (Node has no X.509 generator): a CA, and
 * server certificates it signs for 127.0.0.1 and localhost. Callers check hasCommand('openssl').
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { run } from './tools.js';

export interface TestCertificates {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

/** A fresh CA and a server certificate (127.0.0.1, ::1, localhost) signed by it, in `dir`. */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  await fs.mkdir(dir, { recursive: true });
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.crt');
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=registry test CA'], { timeoutMs: 30_000 });
  const { cert, key } = await signServerCertificate({ dir, caCert, caKey }, 'server');
  return { dir, caCert, caKey, serverCert: cert, serverKey: key };
}

/** Another server certificate from the same CA (a renewal), written as `<name>.crt` / `<name>.key`. */
export async function signServerCertificate(ca: { dir: string; caCert: string; caKey: string }, name: string): Promise<{ cert: string; key: string }> {
  const key = path.join(ca.dir, `${name}.key`);
  const csr = path.join(ca.dir, `${name}.csr`);
  const cert = path.join(ca.dir, `${name}.crt`);
  const extensions = path.join(ca.dir, `${name}.ext`);
  await fs.writeFile(extensions, 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], { timeoutMs: 30_000 });
  await run('openssl', ['x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', ca.caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', extensions], { timeoutMs: 30_000 });
  return { cert, key };
}
