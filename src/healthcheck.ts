/**
 * The container HEALTHCHECK: asks this machine's registry for /healthz, on the port and scheme
 * the configuration gives (REGISTRY_* variables and the config file, as the server reads them),
 * and exits 0 when it answers 200, 1 otherwise. With TLS the certificate is not verified: the
 * check is about the process answering, and the certificate names the public host, not 127.0.0.1.
 *
 *   node dist/healthcheck.js        (in the image)     npx tsx src/healthcheck.ts   (from a checkout)
 */
import http from 'node:http';
import https from 'node:https';
import { loadConfig } from './config/load.js';
import { parseListenAddress } from './serving.js';

const TIMEOUT_MS = 4_000;

function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '::1';
  return host;
}

function check(): Promise<number> {
  const config = loadConfig();
  const { host, port } = parseListenAddress(config.http.addr);
  const secure = Boolean(config.http.tls.certificate && config.http.tls.key);
  const client = secure ? https : http;
  return new Promise((resolve) => {
    const req = client.get(
      { host: probeHost(host), port, path: '/healthz', timeout: TIMEOUT_MS, rejectUnauthorized: false, headers: { 'User-Agent': 'registry-healthcheck' } },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? 0 : 1);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
    req.on('error', (error) => {
      process.stderr.write(`healthcheck: ${error.message}\n`);
      resolve(1);
    });
  });
}

check().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`healthcheck: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
