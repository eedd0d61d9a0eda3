/**
 * /metrics in process: the request histogram moves by route (a fixed set; repository names
 * never become label values), bytes pushed and pulled, stored blob and manifest counts, upload
 * sessions, webhook outbox backlog, garbage collection; metrics off, and behind admin auth.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { parseRegistryMetrics } from '../helpers/server-process.js';
import { binaryParser, pushImage } from '../helpers/app.js';
import { ADMIN_PASSWORD, basic, createOpsApp, type OpsApp } from './support.js';

async function scrape(ops: OpsApp): Promise<{ text: string; samples: Record<string, number> }> {
  const res = await request(ops.app).get('/metrics');
  assert.equal(res.status, 200, res.text);
  assert.match(String(res.headers['content-type']), /^text\/plain/);
  return { text: res.text, samples: parseRegistryMetrics(res.text) };
}

const series = (route: string, method: string, status: number) =>
  `registry_http_request_duration_seconds_count{route="${route}",method="${method}",status="${status}"}`;

describe('metrics', () => {
  let ops: OpsApp;
  before(async () => {
    ops = await createOpsApp();
  });
  after(() => ops?.dispose());

  it('move with pushes and pulls', async () => {
    const before = (await scrape(ops)).samples;
    const image = await pushImage(ops.app, 'secret-team/app', '1.0');
    const pulled = await request(ops.app).get(`/v2/secret-team/app/blobs/${image.layer.digest}`).buffer(true).parse(binaryParser);
    assert.equal(pulled.status, 200);
    await request(ops.app).get('/v2/secret-team/app/manifests/1.0');
    await request(ops.app).head('/v2/secret-team/app/manifests/1.0');
    await request(ops.app).get('/v2/secret-team/app/manifests/missing');
    const started = await request(ops.app).post('/v2/secret-team/app/blobs/uploads/');
    assert.equal(started.status, 202);

    const { text, samples: after } = await scrape(ops);
    const delta = (name: string) => (after[name] ?? 0) - (before[name] ?? 0);
    assert.equal(delta(series('manifest', 'PUT', 201)), 1);
    assert.equal(delta(series('manifest', 'GET', 200)), 1);
    assert.equal(delta(series('manifest', 'HEAD', 200)), 1);
    assert.equal(delta(series('manifest', 'GET', 404)), 1);
    assert.equal(delta(series('blob', 'GET', 200)), 1);
    assert.equal(delta(series('upload_start', 'POST', 201)), 2, 'two monolithic blob pushes');
    assert.equal(delta(series('upload_start', 'POST', 202)), 1);
    assert.ok((after['registry_http_request_duration_seconds_bucket{le="+Inf",route="manifest",method="PUT",status="201"}'] ?? 0) >= 1, 'latency buckets are exported');

    const pushedBytes = image.config.size + image.layer.size;
    assert.equal(delta('registry_upload_bytes_total'), pushedBytes);
    assert.equal(delta('registry_served_bytes_total'), image.layer.size);
    assert.equal(after['registry_blobs'], 2);
    assert.equal(after['registry_manifests'], 1);
    assert.equal(after['registry_repositories'], 1);
    assert.equal(after['registry_tags'], 1);
    assert.equal(after['registry_storage_bytes'], pushedBytes + image.size);
    assert.equal(after['registry_uploads_in_progress'], 1, 'the session started above');
    assert.ok((after['registry_webhook_outbox_backlog'] ?? 0) >= 1, 'the push event waits for the (unstarted) dispatcher');
    assert.equal(after['registry_webhook_deliveries{state="pending"}'], 0);
    assert.match(text, /^registry_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m, 'process metrics');
    assert.doesNotMatch(text, /secret-team/, 'repository names never become label values');
  });

  it('count garbage collections and the bytes they reclaim', async () => {
    const before = (await scrape(ops)).samples;
    assert.equal(before['registry_gc_runs_total'], 0);
    const digest = (await request(ops.app).head('/v2/secret-team/app/manifests/1.0')).headers['docker-content-digest'];
    assert.equal((await request(ops.app).delete(`/v2/secret-team/app/manifests/${digest}`)).status, 202);
    await ops.lifecycle.gc.run({ gracePeriodSeconds: 0 });
    const after = (await scrape(ops)).samples;
    assert.equal(after['registry_gc_runs_total'], 1);
    assert.ok((after['registry_gc_reclaimed_bytes_total'] ?? 0) > 0, 'the deleted image was reclaimed');
    assert.ok((after['registry_gc_last_run_timestamp_seconds'] ?? 0) > 0);
    assert.equal(after['registry_blobs'], 0);
  });

  it('answer X-Request-Id, Server and Docker-Distribution-API-Version on every response', async () => {
    for (const path of ['/v2/', '/healthz', '/metrics', '/nowhere']) {
      const res = await request(ops.app).get(path);
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0', path);
      assert.match(String(res.headers.server), /^harbormaster-registry\/\d+\.\d+\.\d+/, path);
      assert.ok(res.headers['x-request-id'], path);
    }
    const echoed = await request(ops.app).get('/v2/').set('X-Request-Id', 'trace-abc.123');
    assert.equal(echoed.headers['x-request-id'], 'trace-abc.123');
    const refused = await request(ops.app).get('/v2/').set('X-Request-Id', 'has spaces and "quotes"');
    assert.notEqual(refused.headers['x-request-id'], 'has spaces and "quotes"');
  });
});

describe('metrics settings', () => {
  it('metrics.enabled false: no /metrics', async () => {
    const ops = await createOpsApp({ metrics: { enabled: false } });
    try {
      const res = await request(ops.app).get('/metrics');
      assert.equal(res.status, 404);
    } finally {
      await ops.dispose();
    }
  });

  it('metrics.requireAuth: admin credentials needed', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD }, metrics: { requireAuth: true } });
    try {
      const anonymous = await request(ops.app).get('/metrics');
      assert.equal(anonymous.status, 401);
      assert.match(String(anonymous.headers['www-authenticate']), /^Basic /);
      const wrong = await request(ops.app).get('/metrics').set('Authorization', basic('admin', 'wrong-password'));
      assert.equal(wrong.status, 401);
      const admin = await request(ops.app).get('/metrics').set('Authorization', basic('admin', ADMIN_PASSWORD));
      assert.equal(admin.status, 200);
      assert.match(admin.text, /registry_http_request_duration_seconds/);
    } finally {
      await ops.dispose();
    }
  });

  it('metrics open by default even with token auth on', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD } });
    try {
      assert.equal((await request(ops.app).get('/metrics')).status, 200);
    } finally {
      await ops.dispose();
    }
  });
});
