/**
 * End-to-end: /metrics of the registry process moves with real skopeo pushes and pulls —
 * requests by route and status, bytes pushed and pulled, blobs, manifests and storage bytes —
 * and the process answers the version, health and readiness endpoints a deployment probes.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { healthcheck } from '../helpers/healthcheck.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';

const hasSkopeo = hasCommand('skopeo');
if (!hasSkopeo) console.log('metrics e2e skipped: skopeo not installed');

const count = (route: string, method: string, status: number) =>
  `registry_http_request_duration_seconds_count{route="${route}",method="${method}",status="${status}"}`;

describe('metrics of the registry process under skopeo', { skip: hasSkopeo ? false : 'skopeo not installed' }, () => {
  let server: ServerProcess;
  let work: string;
  let image: BuiltImage;
  let skopeo: Skopeo;

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ops-metrics-'));
    server = await startServer();
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    image = await buildOciImage(path.join(work, 'image'), [
      { file: 'one.bin', content: seededBytes('metrics-one', 150 * 1024) },
      { file: 'two.bin', content: seededBytes('metrics-two', 90 * 1024) },
    ]);
  });
  after(async () => {
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('answers /healthz, /readyz and the version headers', async () => {
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', checks: { metadata: 'ok', storage: 'ok' } });
    const base = await fetch(`${server.url}/v2/`);
    assert.equal(base.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.match(base.headers.get('server') ?? '', /^harbormaster-registry\/\d+\.\d+\.\d+/);
    // The container HEALTHCHECK script, pointed at this server as its environment would.
    const healthy = await healthcheck({ REGISTRY_HTTP_ADDR: server.host, REGISTRY_AUTH: 'none' });
    assert.equal(healthy.code, 0, healthy.stderr);
    const nobody = await healthcheck({ REGISTRY_HTTP_ADDR: '127.0.0.1:1', REGISTRY_AUTH: 'none' });
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /ECONNREFUSED/);
  });

  it('counts a skopeo push and pull by route and status, with the bytes and what is stored', async () => {
    const layerBytes = image.layerSizes.reduce((a, b) => a + b, 0);
    const before = await server.metrics();
    await skopeo('copy', '--dest-tls-verify=false', `oci:${image.dir}:latest`, `docker://${server.host}/watched/app:1.0`);
    const pushed = await server.metricsWhen((m) => (m[count('manifest', 'PUT', 201)] ?? 0) - (before[count('manifest', 'PUT', 201)] ?? 0) >= 1);
    const pushDelta = (name: string) => (pushed[name] ?? 0) - (before[name] ?? 0);
    assert.equal(pushDelta(count('manifest', 'PUT', 201)), 1, 'one manifest pushed');
    assert.ok(pushDelta('registry_upload_bytes_total') >= layerBytes, 'every layer byte was received');
    assert.equal(pushed['registry_blobs'], 3, 'two layers and the config');
    assert.equal(pushed['registry_manifests'], 1);
    assert.ok((pushed['registry_storage_bytes'] ?? 0) > layerBytes);
    assert.equal(pushed['registry_uploads_in_progress'], 0, 'every upload session completed');

    await skopeo('copy', '--src-tls-verify=false', `docker://${server.host}/watched/app:1.0`, `dir:${path.join(work, 'pulled')}`);
    const pulled = await server.metricsWhen((m) => (m[count('blob', 'GET', 200)] ?? 0) - (pushed[count('blob', 'GET', 200)] ?? 0) >= 3);
    const pullDelta = (name: string) => (pulled[name] ?? 0) - (pushed[name] ?? 0);
    assert.ok(pullDelta(count('manifest', 'GET', 200)) >= 1, 'the manifest was fetched');
    assert.equal(pullDelta(count('blob', 'GET', 200)), 3, 'two layers and the config were fetched');
    assert.ok(pullDelta('registry_served_bytes_total') >= layerBytes);
    assert.equal(pullDelta(count('manifest', 'PUT', 201)), 0);
  });
});
