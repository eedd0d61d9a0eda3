/**
 * The browsing API (/api/v1/repositories …) on an open registry: repository summaries and
 * search, tag pages in every order with filters and cursors, and an image's details (layers,
 * config with HEALTHCHECK, index platforms, referrers, the other tags on its digest).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { assertError, createTestApp, imageManifest, MEDIA, pushBlob, pushManifest, type Descriptor, type TestApp } from '../helpers/app.js';
import { METADATA_BACKENDS } from '../helpers/metadata-backends.js';

interface TagJson {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  platforms: Array<{ os: string; architecture: string; variant?: string }>;
  pushedAt: string;
  pusher: { name: string; kind: string } | null;
}

const HEALTHCHECK = { Test: ['CMD-SHELL', 'wget -q -O- http://localhost:8080/healthz || exit 1'], Interval: 30e9, Timeout: 5e9, StartPeriod: 10e9, Retries: 3 };

function imageConfig(seed: string, architecture = 'amd64'): object {
  return {
    created: '2030-01-01T00:00:00Z',
    architecture,
    os: 'linux',
    config: {
      User: 'app',
      WorkingDir: '/srv/app',
      Entrypoint: ['/bin/app'],
      Cmd: ['serve', '--port', '8080'],
      Env: ['PATH=/usr/bin', `SEED=${seed}`],
      ExposedPorts: { '8080/tcp': {} },
      Labels: { 'org.opencontainers.image.source': 'https://example.invalid/app' },
      Healthcheck: HEALTHCHECK,
    },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [{ created: '2030-01-01T00:00:00Z', created_by: 'COPY app /bin/app' }, { created_by: 'HEALTHCHECK …', empty_layer: true }],
  };
}

async function pushSeededImage(t: TestApp, name: string, tag: string, seed: string, architecture = 'amd64') {
  const config = await pushBlob(t.app, name, JSON.stringify(imageConfig(seed, architecture)), MEDIA.ociConfig);
  const layers = [await pushBlob(t.app, name, `first layer of ${seed}`), await pushBlob(t.app, name, `second layer of ${seed} `.repeat(20))];
  const manifest = await pushManifest(t.app, name, tag, imageManifest(config, layers));
  return { manifest, config, layers, size: manifest.size + config.size + layers[0]!.size + layers[1]!.size };
}

/** Waits (bounded) until the clock has moved past `ms`, so the next push gets a later push time. */
async function clockPast(ms: number): Promise<void> {
  for (let i = 0; Date.now() <= ms && i < 1000; i++) await new Promise((resolve) => setTimeout(resolve, 1));
}

for (const backend of METADATA_BACKENDS) describe(`browsing API (${backend.name})`, { skip: backend.skip }, () => {
  let t: TestApp;
  let v1: Awaited<ReturnType<typeof pushSeededImage>>;
  let index: Descriptor;
  let signature: Descriptor;
  const TAGS = ['1.0.0', '1.2.0', '1.10.0', 'v1.9.0', '2.0.0-rc.1', 'dev-abc'];

  before(async () => {
    t = await createTestApp({ metadata: await backend.metadataConfig() });
    v1 = await pushSeededImage(t, 'team/app', '1.0.0', 'v1');
    for (const tag of TAGS.slice(1)) await pushSeededImage(t, 'team/app', tag, tag);
    await pushManifest(t.app, 'team/app', 'latest', JSON.parse(JSON.stringify(imageManifest(v1.config, v1.layers))));
    const arm = await pushSeededImage(t, 'team/app', 'arm-only', 'arm', 'arm64');
    index = await pushManifest(
      t.app,
      'team/app',
      'multi',
      {
        schemaVersion: 2,
        mediaType: MEDIA.ociIndex,
        manifests: [
          { ...v1.manifest, platform: { os: 'linux', architecture: 'amd64' } },
          { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        ],
      },
      MEDIA.ociIndex,
    );
    const empty = await pushBlob(t.app, 'team/app', '{}', 'application/vnd.oci.empty.v1+json');
    signature = await pushManifest(t.app, 'team/app', `sha256-${v1.manifest.digest.slice(7)}`, {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      config: empty,
      layers: [await pushBlob(t.app, 'team/app', 'signature bytes', 'application/vnd.dev.cosign.simplesigning.v1+json')],
      subject: v1.manifest,
    });
    for (const name of ['alpha', 'team/api', 'tools/ci', 'x/tags']) await pushSeededImage(t, name, '1.0', name);
  });

  after(() => t?.close());

  it('lists repositories in name order with tag count, last push and stored size', async () => {
    const res = await request(t.app).get('/api/v1/repositories').expect(200);
    const repositories = res.body.repositories as Array<{ name: string; tagCount: number; lastPushAt: string; storedBytes: number }>;
    assert.deepEqual(repositories.map((r) => r.name), ['alpha', 'team/api', 'team/app', 'tools/ci', 'x/tags']);
    const app = repositories.find((r) => r.name === 'team/app')!;
    assert.equal(app.tagCount, TAGS.length + 4, 'the six versions, latest, arm-only, multi and the signature tag');
    assert.ok(Date.parse(app.lastPushAt) > Date.now() - 60_000);
    const usage = await request(t.app).get('/api/v1/usage/team/app').expect(200);
    assert.equal(app.storedBytes, usage.body.logicalBytes, 'stored size as usage reports count it');
    assert.equal(res.body.next, null);
  });

  it('searches and pages repositories by cursor', async () => {
    const found = await request(t.app).get('/api/v1/repositories?q=TEAM').expect(200);
    assert.deepEqual(found.body.repositories.map((r: { name: string }) => r.name), ['team/api', 'team/app']);
    const wildcard = await request(t.app).get('/api/v1/repositories?q=%25').expect(200);
    assert.deepEqual(wildcard.body.repositories, [], 'a % in the search is a literal character');
    const seen: string[] = [];
    let last: string | null = '';
    for (let pages = 0; last !== null && pages < 10; pages++) {
      const res: request.Response = await request(t.app).get(`/api/v1/repositories?n=2${last ? `&last=${encodeURIComponent(last)}` : ''}`).expect(200);
      assert.ok(res.body.repositories.length <= 2);
      seen.push(...res.body.repositories.map((r: { name: string }) => r.name));
      last = res.body.next;
    }
    assert.deepEqual(seen, ['alpha', 'team/api', 'team/app', 'tools/ci', 'x/tags']);
  });

  it('answers one repository summary, a name ending in /tags included', async () => {
    const res = await request(t.app).get('/api/v1/repositories/x/tags').expect(200);
    assert.equal(res.body.name, 'x/tags');
    assert.equal(res.body.tagCount, 1);
    assertError(await request(t.app).get('/api/v1/repositories/nope/nothing'), 404, 'NAME_UNKNOWN');
  });

  it('sorts tags by semver: highest version first, then the rest by name', async () => {
    const res = await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=semver').expect(200);
    const names = (res.body.tags as TagJson[]).map((tag) => tag.name);
    assert.deepEqual(names.slice(0, 5), ['2.0.0-rc.1', '1.10.0', 'v1.9.0', '1.2.0', '1.0.0']);
    assert.deepEqual(names.slice(5), ['arm-only', 'dev-abc', 'latest', 'multi', `sha256-${v1.manifest.digest.slice(7)}`]);
    assert.equal(res.body.total, 10);
  });

  it('describes each tag: digest, size pulled, platforms, push time and pusher', async () => {
    const res = await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=name').expect(200);
    const tags = new Map((res.body.tags as TagJson[]).map((tag) => [tag.name, tag]));
    const first = tags.get('1.0.0')!;
    assert.equal(first.digest, v1.manifest.digest);
    assert.equal(first.mediaType, MEDIA.ociManifest);
    assert.equal(first.size, v1.size, 'manifest + config + layers');
    assert.deepEqual(first.platforms, [{ os: 'linux', architecture: 'amd64' }]);
    assert.deepEqual(first.pusher, { name: 'anonymous', kind: 'anonymous' });
    assert.ok(Date.parse(first.pushedAt) > 0);
    assert.equal(tags.get('latest')!.digest, v1.manifest.digest);
    const multi = tags.get('multi')!;
    assert.equal(multi.digest, index.digest);
    assert.deepEqual(multi.platforms, [{ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64', variant: 'v8' }]);
    const arm = tags.get('arm-only')!;
    assert.equal(multi.size, index.size + v1.size + arm.size, 'an index pulls its children too');
    assert.deepEqual(tags.get(`sha256-${v1.manifest.digest.slice(7)}`)!.platforms, [], 'an artifact has no platform');
  });

  it('pages tags newest first by push time, every tag once', async () => {
    // One more push after the others: the moved tag is the newest.
    const all = await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=name&n=100').expect(200);
    await clockPast(Math.max(...(all.body.tags as TagJson[]).map((tag) => Date.parse(tag.pushedAt))));
    await pushManifest(t.app, 'team/app', '1.2.0', JSON.parse(JSON.stringify(imageManifest(v1.config, v1.layers))));
    const seen: TagJson[] = [];
    let last: string | null = '';
    for (let pages = 0; last !== null && pages < 20; pages++) {
      const res: request.Response = await request(t.app).get(`/api/v1/repositories/team/app/_tags?sort=pushed&n=3${last ? `&last=${encodeURIComponent(last)}` : ''}`).expect(200);
      assert.equal(res.body.total, 10);
      seen.push(...res.body.tags);
      last = res.body.next;
    }
    assert.equal(seen.length, 10);
    assert.equal(seen[0]!.name, '1.2.0');
    assert.equal(seen[0]!.digest, v1.manifest.digest);
    const keys = seen.map((tag) => [Date.parse(tag.pushedAt), tag.name] as const);
    const sorted = [...keys].sort((a, b) => b[0] - a[0] || (a[1] < b[1] ? 1 : -1));
    assert.deepEqual(keys, sorted, 'newest first, ties by name descending');
  });

  it('filters tags by a substring and pages by semver with a cursor', async () => {
    const res = await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=semver&q=1.&n=2').expect(200);
    assert.equal(res.body.total, 4);
    assert.deepEqual(res.body.tags.map((tag: TagJson) => tag.name), ['1.10.0', 'v1.9.0']);
    const second = await request(t.app).get(`/api/v1/repositories/team/app/_tags?sort=semver&q=1.&n=2&last=${res.body.next}`).expect(200);
    assert.deepEqual(second.body.tags.map((tag: TagJson) => tag.name), ['1.2.0', '1.0.0']);
    assert.equal(second.body.next, null);
  });

  it('keeps the semver order and the count current as tags come and go', async () => {
    const names = async () => {
      const res = await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=semver&n=3').expect(200);
      return { names: (res.body.tags as TagJson[]).map((tag) => tag.name), total: res.body.total as number };
    };
    assert.deepEqual(await names(), { names: ['2.0.0-rc.1', '1.10.0', 'v1.9.0'], total: 10 });
    await pushManifest(t.app, 'team/app', '3.0.0', JSON.parse(JSON.stringify(imageManifest(v1.config, v1.layers))));
    assert.deepEqual(await names(), { names: ['3.0.0', '2.0.0-rc.1', '1.10.0'], total: 11 });
    await request(t.app).delete('/v2/team/app/manifests/3.0.0').expect(202);
    await request(t.app).delete('/v2/team/app/manifests/2.0.0-rc.1').expect(202);
    assert.deepEqual(await names(), { names: ['1.10.0', 'v1.9.0', '1.2.0'], total: 9 });
    await pushSeededImage(t, 'team/app', '2.0.0-rc.1', '2.0.0-rc.1');
  });

  it('refuses an unknown sort, a malformed cursor and an unknown repository', async () => {
    assertError(await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=size'), 400, 'INVALID_REQUEST');
    assertError(await request(t.app).get('/api/v1/repositories/team/app/_tags?sort=pushed&last=yesterday'), 400, 'INVALID_REQUEST');
    assertError(await request(t.app).get('/api/v1/repositories/team/none/_tags'), 404, 'NAME_UNKNOWN');
  });

  it('details an image: layers, config with HEALTHCHECK, history, referrers, tags on its digest', async () => {
    const res = await request(t.app).get('/api/v1/repositories/team/app/_images/latest').expect(200);
    const image = res.body;
    assert.equal(image.kind, 'image');
    assert.equal(image.digest, v1.manifest.digest);
    assert.deepEqual(image.tags, ['1.0.0', '1.2.0', 'latest']);
    assert.deepEqual(image.layers.map((layer: Descriptor) => [layer.digest, layer.size, layer.mediaType]), v1.layers.map((layer) => [layer.digest, layer.size, MEDIA.ociLayer]));
    assert.equal(image.config.digest, v1.config.digest);
    const config = image.config.image;
    assert.deepEqual(config.healthcheck, {
      test: HEALTHCHECK.Test,
      intervalSeconds: 30,
      timeoutSeconds: 5,
      startPeriodSeconds: 10,
      startIntervalSeconds: null,
      retries: 3,
    });
    assert.deepEqual(config.entrypoint, ['/bin/app']);
    assert.deepEqual(config.cmd, ['serve', '--port', '8080']);
    assert.deepEqual(config.exposedPorts, ['8080/tcp']);
    assert.equal(config.user, 'app');
    assert.equal(config.workingDir, '/srv/app');
    assert.equal(config.created, '2030-01-01T00:00:00Z');
    assert.deepEqual(config.platform, { os: 'linux', architecture: 'amd64' });
    assert.ok(config.env.includes('SEED=v1'));
    assert.equal(config.labels['org.opencontainers.image.source'], 'https://example.invalid/app');
    assert.deepEqual(config.history.map((entry: { createdBy: string; emptyLayer: boolean }) => [entry.createdBy, entry.emptyLayer]), [
      ['COPY app /bin/app', false],
      ['HEALTHCHECK …', true],
    ]);
    assert.deepEqual(image.referrers.map((referrer: Descriptor) => [referrer.digest, referrer.artifactType]), [[signature.digest, 'application/vnd.dev.cosign.artifact.sig.v1+json']]);
    assert.equal(JSON.parse(image.raw).config.digest, v1.config.digest, 'the manifest as stored');
    assert.equal(image.totalSize, v1.size);
  });

  it('details an index by digest: its platforms; an artifact: its subject', async () => {
    const res = await request(t.app).get(`/api/v1/repositories/team/app/_images/${index.digest}`).expect(200);
    assert.equal(res.body.kind, 'index');
    assert.deepEqual(res.body.manifests.map((entry: { platform: unknown }) => entry.platform), [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ]);
    assert.equal(res.body.config, null);
    const artifact = await request(t.app).get(`/api/v1/repositories/team/app/_images/${signature.digest}`).expect(200);
    assert.equal(artifact.body.kind, 'artifact');
    assert.equal(artifact.body.subject, v1.manifest.digest);
    assert.equal(artifact.body.config.image, null, 'an artifact config is not read as an image config');
    assertError(await request(t.app).get('/api/v1/repositories/team/app/_images/9.9.9'), 404, 'MANIFEST_UNKNOWN');
  });
});
