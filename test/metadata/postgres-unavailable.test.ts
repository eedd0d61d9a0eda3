/**
 * PostgreSQL out of reach (restart, failover, a network cut): requests get 503 with Retry-After
 * in the spec's error format, which clients retry, rather than a 500 they give up on; /readyz
 * says not ready; and once the database is back the same process serves again (the pool
 * reconnects). The database sits behind a loopback TCP relay the test can cut and restore.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { freshPostgresDatabase, POSTGRES_SKIP } from '../helpers/metadata-backends.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { createTestRegistry, type TestRegistry } from '../webhooks/support.js';

describe('PostgreSQL out of reach', { skip: POSTGRES_SKIP }, () => {
  let registry: TestRegistry;
  let relay: TcpProxy;

  before(async () => {
    const url = new URL(await freshPostgresDatabase());
    relay = await startTcpProxy(url.host);
    url.host = relay.host;
    registry = await createTestRegistry({ metadata: { driver: 'postgres', postgres: { url: url.toString(), connectionTimeoutMs: 1_000 } }, start: false });
  });
  after(async () => {
    relay?.restore();
    await registry?.dispose();
    await relay?.close();
  });

  it('answers 503 with Retry-After while it is gone, and serves again once it is back', async () => {
    const pushed = await pushImage(registry.app, 'team/app', 'v1');
    assert.equal((await request(registry.app).get('/readyz')).status, 200);

    relay.cut();
    for (const path of ['/v2/team/app/manifests/v1', `/v2/team/app/blobs/${pushed.layer.digest}`, '/v2/_catalog', '/v2/team/app/tags/list']) {
      const res = await request(registry.app).get(path).set('Accept', 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(res.status, 503, `${path}: ${res.status} ${res.text}`);
      assert.equal(res.headers['retry-after'], '1', path);
      assert.equal(res.body.errors?.[0]?.code, 'UNKNOWN', path);
      assert.match(res.body.errors[0].message, /metadata database is unavailable/, path);
    }
    const push = await request(registry.app).post('/v2/team/other/blobs/uploads/');
    assert.equal(push.status, 503, 'a write too');
    assert.equal((await request(registry.app).get('/readyz')).status, 503);

    relay.restore();
    const again = await request(registry.app).get('/v2/team/app/manifests/v1').set('Accept', 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(again.status, 200, 'the pool reconnects');
    assert.equal(again.headers['docker-content-digest'], pushed.digest);
  });
});
