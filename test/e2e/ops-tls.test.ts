/**
 * End-to-end: the registry process serving HTTPS from certificate files, driven by skopeo with
 * a CA it trusts (--dest-cert-dir / --cert-dir holding ca.crt), refused without that CA, and a
 * SIGHUP that swaps the certificate for new handshakes while an open connection keeps working.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { makeCertificates, signServerCertificate, type TestCertificates } from '../helpers/certificates.js';
import { healthcheck } from '../helpers/healthcheck.js';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';

const missing = ['skopeo', 'openssl'].filter((tool) => !hasCommand(tool));
if (missing.length) console.log(`TLS e2e skipped: ${missing.join(' and ')} not installed`);

describe('HTTPS with skopeo', { skip: missing.length ? `${missing.join(' and ')} not installed` : false }, () => {
  let server: ServerProcess;
  let work: string;
  let certs: TestCertificates;
  let certDir: string;
  let image: BuiltImage;
  let skopeo: Skopeo;

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ops-tls-'));
    certs = await makeCertificates(path.join(work, 'pki'));
    // The files the registry serves from (replaced on "renewal" below).
    await fs.copyFile(certs.serverCert, path.join(work, 'tls.crt'));
    await fs.copyFile(certs.serverKey, path.join(work, 'tls.key'));
    // What skopeo trusts: a folder holding the CA as ca.crt.
    certDir = path.join(work, 'trust');
    await fs.mkdir(certDir);
    await fs.copyFile(certs.caCert, path.join(certDir, 'ca.crt'));
    image = await buildOciImage(path.join(work, 'image'), [{ file: 'app.bin', content: seededBytes('tls-image', 64 * 1024) }]);
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    server = await startServer({
      env: { REGISTRY_HTTP_TLS_CERTIFICATE: path.join(work, 'tls.crt'), REGISTRY_HTTP_TLS_KEY: path.join(work, 'tls.key') },
    });
  });

  after(async () => {
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('listens on https and logs the certificate it serves, warning that it expires soon', () => {
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    // The test certificates are valid for two days: under the 14-day warning threshold.
    assert.match(server.output(), /"level":40,[^\n]*"subject":"CN=server"[^\n]*"msg":"TLS certificate loaded; it expires soon or has expired"/);
  });

  it('the container health check speaks https when TLS is configured', async () => {
    const res = await healthcheck({ REGISTRY_HTTP_ADDR: server.host, REGISTRY_AUTH: 'none', REGISTRY_HTTP_TLS_CERTIFICATE: path.join(work, 'tls.crt'), REGISTRY_HTTP_TLS_KEY: path.join(work, 'tls.key') });
    assert.equal(res.code, 0, res.stderr);
    const plain = await healthcheck({ REGISTRY_HTTP_ADDR: server.host, REGISTRY_AUTH: 'none' });
    assert.equal(plain.code, 1, 'plain HTTP to a TLS port fails');
  });

  it('skopeo pushes and pulls over TLS with the CA in --dest-cert-dir / --src-cert-dir', async () => {
    await skopeo('copy', '--dest-cert-dir', certDir, `oci:${image.dir}:latest`, `docker://${server.host}/secure/app:1.0`);
    const inspected = await skopeo('inspect', '--raw', '--cert-dir', certDir, `docker://${server.host}/secure/app:1.0`);
    assert.equal(JSON.parse(inspected.stdout).layers[0].digest, image.layerDigests[0]);
    const out = path.join(work, 'pulled');
    await skopeo('copy', '--src-cert-dir', certDir, `docker://${server.host}/secure/app:1.0`, `oci:${out}:1.0`);
    const index = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]!.digest, image.manifestDigest);
  });

  it('skopeo refuses the registry when it does not trust the CA', async () => {
    const emptyTrust = path.join(work, 'no-trust');
    await fs.mkdir(emptyTrust, { recursive: true });
    await assert.rejects(skopeo('inspect', '--raw', '--cert-dir', emptyTrust, `docker://${server.host}/secure/app:1.0`), /certificate|x509|unknown authority/i);
  });

  it('SIGHUP serves a renewed certificate to new connections and keeps open ones', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: await fs.readFile(certs.caCert) });
    try {
      const first = await get(agent, `${server.url}/v2/`);
      assert.equal(first.status, 200);
      const before = await servedSerial(server, certs.caCert);

      const renewed = await signServerCertificate(certs, 'renewed');
      await fs.copyFile(renewed.cert, path.join(work, 'tls.crt'));
      await fs.copyFile(renewed.key, path.join(work, 'tls.key'));
      const reloads = (server.output().match(/TLS certificate reloaded/g) ?? []).length;
      server.child.kill('SIGHUP');
      await waitFor(() => (server.output().match(/TLS certificate reloaded/g) ?? []).length > reloads, 'the reload log line');

      const after = await servedSerial(server, certs.caCert);
      assert.notEqual(after, before, 'new handshakes get the renewed certificate');
      const second = await get(agent, `${server.url}/v2/`);
      assert.equal(second.status, 200);
      assert.equal(second.localPort, first.localPort, 'the connection opened before the reload was kept and reused');
      assert.equal(server.child.exitCode, null, 'the server kept running');
    } finally {
      agent.destroy();
    }
  });

  it('a broken certificate on SIGHUP keeps the previous one', async () => {
    const serial = await servedSerial(server, certs.caCert);
    await fs.writeFile(path.join(work, 'tls.crt'), 'not a certificate');
    server.child.kill('SIGHUP');
    await waitFor(() => /TLS reload failed/.test(server.output()), 'the failed reload log line');
    assert.equal(await servedSerial(server, certs.caCert), serial);
  });
});

function get(agent: https.Agent, url: string): Promise<{ status: number; localPort: number | undefined }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent }, (res) => {
      const localPort = res.socket.localPort;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, localPort }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
  });
}

/** The serial number of the certificate a fresh TLS handshake is given (verified against the CA). */
async function servedSerial(server: ServerProcess, caFile: string): Promise<string> {
  const url = new URL(server.url);
  const ca = await fs.readFile(caFile);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca, servername: undefined }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
  });
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}
