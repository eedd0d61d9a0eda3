/**
 * The operator's rules as users meet them: immutable tags (DENIED naming the rule, identical
 * re-push allowed), quotas (DENIED with how much is over, at blob upload and at manifest push),
 * and retention policies (dry run, then deletion of exactly the tags no rule keeps).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { SqliteLifecycleStore } from '../../src/metadata/sqlite/lifecycle-store.js';
import type { SqliteMetadataStore } from '../../src/metadata/sqlite/metadata-store.js';
import type { GcReport } from '../../src/registry/gc.js';
import { createLifecycle } from '../../src/registry/lifecycle.js';
import { assertError, imageManifest, MEDIA, pushBlob, pushImage, pushManifest, sha256 } from '../helpers/app.js';
import { assertPulls, blobFile, createLifecycleApp, exists, type LifecycleTestApp } from './helpers.js';

const DAY = 86_400_000;

describe('lifecycle rules', () => {
  let t: LifecycleTestApp;
  before(async () => {
    t = await createLifecycleApp({
      lifecycle: {
        immutableTags: [
          { name: 'releases', repositories: ['imm/**'], tags: ['v*'] },
          { repositories: ['java/**', 'ret/**'], tags: ['*.RELEASE', 'frozen-*'] },
        ],
        quotas: [
          { name: 'small', repositories: ['quota/*'], maxBytes: '2KiB' },
          { name: 'one-megabyte', repositories: ['megabyte/*'], maxBytes: '1MB' },
        ],
        retention: [
          { name: 'keep-two', repositories: ['ret/keep'], keepLatest: 2, keepTags: ['semver:stable'] },
          { name: 'month', repositories: ['ret/old'], olderThanDays: 30, keepTags: ['latest'] },
        ],
      },
    });
  });
  after(() => t.close());

  /** Sets when a tag was last pushed (retention orders and ages tags by it). */
  function setPushedAt(repository: string, tag: string, at: number): void {
    const db = (t.assembled.registry.metadata as SqliteMetadataStore).db;
    const changed = db
      .prepare('UPDATE tags SET updated_at = ? WHERE name = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)')
      .run(at, tag, repository).changes;
    assert.equal(changed, 1, `no tag ${repository}:${tag}`);
  }

  async function tags(repository: string): Promise<string[]> {
    return ((await request(t.app).get(`/v2/${repository}/tags/list`)).body.tags as string[]).sort();
  }

  async function gc(body: Record<string, unknown>): Promise<GcReport> {
    const res = await request(t.app).post('/api/v1/gc').send(body);
    assert.equal(res.status, 200, res.text);
    return res.body as GcReport;
  }

  describe('immutable tags', () => {
    it('refuses to move an immutable tag with DENIED naming the rule, and allows re-pushing the same digest', async () => {
      const first = await pushImage(t.app, 'imm/app', 'v1.0');
      const other = await pushImage(t.app, 'imm/app', 'candidate', 'another build');
      const moved = await request(t.app).put('/v2/imm/app/manifests/v1.0').set('Content-Type', MEDIA.ociManifest).send(other.body.toString());
      assertError(moved, 403, 'DENIED');
      assert.equal(
        moved.body.errors[0].message,
        `tag v1.0 of imm/app is immutable (immutable tag rule "releases") and already points at ${first.digest}; push under a new tag`,
      );
      assert.deepEqual(moved.body.errors[0].detail, { repository: 'imm/app', tag: 'v1.0', digest: first.digest, rule: 'immutable tag rule "releases"' });
      assert.equal((await request(t.app).get('/v2/imm/app/manifests/v1.0')).headers['docker-content-digest'], first.digest);

      await pushManifest(t.app, 'imm/app', 'v1.0', first.body);
      // Tags no rule names stay mutable.
      await pushManifest(t.app, 'imm/app', 'latest', first.body);
      await pushManifest(t.app, 'imm/app', 'latest', other.body);
    });

    it('refuses to delete an immutable tag, directly or with its manifest', async () => {
      const image = await pushImage(t.app, 'imm/delete', 'v2');
      const byTag = await request(t.app).delete('/v2/imm/delete/manifests/v2');
      assertError(byTag, 403, 'DENIED');
      assert.equal(byTag.body.errors[0].message, 'tag v2 of imm/delete is immutable (immutable tag rule "releases") and cannot be deleted');
      assertError(await request(t.app).delete(`/v2/imm/delete/manifests/${image.digest}`), 403, 'DENIED');
      await assertPulls(t.app, 'imm/delete', 'v2');
      // A deletion of a tag that does not exist is still MANIFEST_UNKNOWN.
      assertError(await request(t.app).delete('/v2/imm/delete/manifests/v9'), 404, 'MANIFEST_UNKNOWN');
    });

    it('of two concurrent pushes of different images to a new immutable tag, exactly one wins', async () => {
      const a = await pushImage(t.app, 'imm/race', 'a', 'build a');
      const b = await pushImage(t.app, 'imm/race', 'b', 'build b');
      const put = (body: Buffer) => request(t.app).put('/v2/imm/race/manifests/v3.0').set('Content-Type', MEDIA.ociManifest).send(body.toString());
      const results = await Promise.all([put(a.body), put(b.body)]);
      assert.deepEqual(results.map((r) => r.status).sort(), [201, 403]);
      const winner = results[0]!.status === 201 ? a : b;
      assert.equal((await request(t.app).get('/v2/imm/race/manifests/v3.0')).headers['docker-content-digest'], winner.digest);
    });

    it('names an unnamed rule by its patterns', async () => {
      await pushImage(t.app, 'java/service', '2.1.RELEASE');
      const other = await pushImage(t.app, 'java/service', 'snapshot', 'snapshot build');
      const moved = await request(t.app).put('/v2/java/service/manifests/2.1.RELEASE').set('Content-Type', MEDIA.ociManifest).send(other.body.toString());
      assertError(moved, 403, 'DENIED');
      assert.match(moved.body.errors[0].message, /^tag 2\.1\.RELEASE of java\/service is immutable \(immutable tag rule #2: tags \*\.RELEASE, frozen-\* in java\/\*\*, ret\/\*\*\)/);
      // A repository outside the rule may move such a tag.
      await pushImage(t.app, 'other/service', '2.1.RELEASE');
      await pushImage(t.app, 'other/service', '2.1.RELEASE', 'rebuilt');
    });
  });

  describe('quotas', () => {
    it('refuses a blob upload that would take the repository over its quota, saying by how much', async () => {
      const image = await pushImage(t.app, 'quota/app', 'v1');
      const usage = (await request(t.app).get('/api/v1/usage/quota/app')).body as { logicalBytes: number };
      assert.equal(usage.logicalBytes, image.size + image.config.size + image.layer.size);

      const big = Buffer.alloc(3000, 7);
      const res = await request(t.app).post(`/v2/quota/app/blobs/uploads/?digest=${sha256(big)}`).set('Content-Type', 'application/octet-stream').send(big);
      assertError(res, 403, 'DENIED');
      const after = usage.logicalBytes + big.length;
      assert.deepEqual(res.body.errors[0].detail, {
        repository: 'quota/app',
        quotaBytes: 2048,
        usageBytes: after,
        overBytes: after - 2048,
        rule: 'quota "small"',
      });
      assert.match(res.body.errors[0].message, new RegExp(`^quota exceeded: this push would bring quota/app to .*\\(${after} bytes\\), .*\\(${after - 2048} bytes\\) over its quota of 2\\.0 KiB \\(2048 bytes\\) \\(quota "small"\\)`));
      assert.equal((await request(t.app).head(`/v2/quota/app/blobs/${sha256(big)}`)).status, 404);
      assert.equal(await exists(blobFile(t.root, sha256(big))), false, 'a refused upload left its content behind');
    });

    it('refuses a manifest whose blobs together exceed the quota, and accepts it once space is freed', async () => {
      const first = await pushImage(t.app, 'quota/two', 'v1');
      const config = await pushBlob(t.app, 'quota/two', JSON.stringify({ architecture: 'amd64', os: 'linux', seed: 'big' }), MEDIA.ociConfig);
      const a = await pushBlob(t.app, 'quota/two', Buffer.alloc(700, 1));
      const b = await pushBlob(t.app, 'quota/two', Buffer.alloc(700, 2));
      const body = JSON.stringify(imageManifest(config, [a, b]));
      const refused = await request(t.app).put('/v2/quota/two/manifests/v2').set('Content-Type', MEDIA.ociManifest).send(body);
      assertError(refused, 403, 'DENIED');
      const detail = refused.body.errors[0].detail as { usageBytes: number; overBytes: number };
      const expected = first.size + first.config.size + first.layer.size + Buffer.byteLength(body) + config.size + a.size + b.size;
      assert.equal(detail.usageBytes, expected);
      assert.equal(detail.overBytes, expected - 2048);
      assertError(await request(t.app).get('/v2/quota/two/manifests/v2'), 404, 'MANIFEST_UNKNOWN');

      // Quotas count what the repository holds: deleting v1 and unlinking its blobs frees its share at once.
      assert.equal((await request(t.app).delete(`/v2/quota/two/manifests/${first.digest}`)).status, 202);
      for (const blob of [first.config, first.layer]) assert.equal((await request(t.app).delete(`/v2/quota/two/blobs/${blob.digest}`)).status, 202);
      await pushManifest(t.app, 'quota/two', 'v2', Buffer.from(body));
      await assertPulls(t.app, 'quota/two', 'v2');
    });

    it('counts blobs as soon as they are uploaded: 20 distinct 900 kB blobs under 1 MB, one after another, take one', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const blob = Buffer.alloc(900_000, i + 1);
        statuses.push((await request(t.app).post(`/v2/megabyte/serial/blobs/uploads/?digest=${sha256(blob)}`).set('Content-Type', 'application/octet-stream').send(blob)).status);
      }
      assert.deepEqual(statuses, [201, ...Array<number>(19).fill(403)]);
      const usage = (await request(t.app).get('/api/v1/usage/megabyte/serial')).body as { heldBytes: number };
      assert.equal(usage.heldBytes, 900_000);
    });

    it('counts blobs as soon as they are uploaded: 20 concurrent uploads of distinct 900 kB blobs under 1 MB, one wins', async () => {
      const blobs = Array.from({ length: 20 }, (_, i) => Buffer.alloc(900_000, 100 + i));
      const responses = await Promise.all(
        blobs.map((blob) => request(t.app).post(`/v2/megabyte/burst/blobs/uploads/?digest=${sha256(blob)}`).set('Content-Type', 'application/octet-stream').send(blob)),
      );
      const statuses = responses.map((res) => res.status).sort();
      assert.deepEqual(statuses, [201, ...Array<number>(19).fill(403)], 'the in-transaction check holds under concurrency');
      for (const res of responses) if (res.status === 403) assertError(res, 403, 'DENIED');
      const held = await Promise.all(blobs.map(async (blob) => (await request(t.app).head(`/v2/megabyte/burst/blobs/${sha256(blob)}`)).status));
      assert.equal(held.filter((status) => status === 200).length, 1);
      const usage = (await request(t.app).get('/api/v1/usage/megabyte/burst')).body as { heldBytes: number };
      assert.equal(usage.heldBytes, 900_000);
    });

    it('repositories no rule names have no quota', async () => {
      const big = Buffer.alloc(5000, 3);
      await pushBlob(t.app, 'unlimited/app', big);
    });
  });

  describe('retention', () => {
    it('keeps the newest N, the matching and the immutable tags, deletes the rest; a dry run only reports', async () => {
      const now = Date.now();
      const stable = await pushImage(t.app, 'ret/keep', '1.0.0');
      const devA = await pushImage(t.app, 'ret/keep', 'dev-a');
      const rc = await pushImage(t.app, 'ret/keep', '1.1.0-rc.1');
      await pushImage(t.app, 'ret/keep', 'frozen-x');
      const latest = await pushImage(t.app, 'ret/keep', 'latest');
      await pushManifest(t.app, 'ret/keep', 'dev-b', latest.body);
      await pushImage(t.app, 'ret/keep', 'dev-c');
      const order = ['1.0.0', 'dev-a', '1.1.0-rc.1', 'frozen-x', 'dev-b', 'dev-c', 'latest'];
      order.forEach((tag, i) => setPushedAt('ret/keep', tag, now - (order.length - i) * DAY));

      const dry = await gc({ dryRun: true, gracePeriodSeconds: 0 });
      const expected = [
        { repository: 'ret/keep', tag: 'dev-b', digest: latest.digest, policy: 'retention policy "keep-two"' },
        { repository: 'ret/keep', tag: '1.1.0-rc.1', digest: rc.digest, policy: 'retention policy "keep-two"' },
        { repository: 'ret/keep', tag: 'dev-a', digest: devA.digest, policy: 'retention policy "keep-two"' },
      ];
      assert.deepEqual(dry.tagsDeleted.items.filter((d) => d.repository === 'ret/keep'), expected);
      assert.deepEqual(await tags('ret/keep'), [...order].sort(), 'a dry run deleted tags');

      const real = await gc({ gracePeriodSeconds: 0 });
      assert.deepEqual(real.tagsDeleted.items.filter((d) => d.repository === 'ret/keep'), expected);
      assert.deepEqual(await tags('ret/keep'), ['1.0.0', 'dev-c', 'frozen-x', 'latest']);
      // The manifests that lost their last tag went with it, and so did their unique blobs; latest (also dev-b) stays.
      assert.deepEqual(
        real.manifestsRemoved.items.filter((m) => m.repository === 'ret/keep').map((m) => [m.digest, m.reason]).sort(),
        [[devA.digest, 'retention'], [rc.digest, 'retention']].sort(),
      );
      for (const image of [devA, rc]) assert.equal(await exists(blobFile(t.root, image.layer.digest)), false);
      for (const tag of ['1.0.0', 'dev-c', 'frozen-x', 'latest']) await assertPulls(t.app, 'ret/keep', tag);
      assert.equal(await exists(blobFile(t.root, stable.layer.digest)), true);
      const events = await t.assembled.registry.metadata.readEvents(0, 100_000);
      assert.ok(events.some((e) => e.type === 'tag.deleted' && e.repository === 'ret/keep' && e.tag === 'dev-a' && e.actor.kind === 'system'));
    });

    it('deletes tags older than olderThanDays, except those it keeps by pattern', async () => {
      const now = Date.now();
      await pushImage(t.app, 'ret/old', 'old-1');
      await pushImage(t.app, 'ret/old', 'latest');
      await pushImage(t.app, 'ret/old', 'new-1');
      setPushedAt('ret/old', 'old-1', now - 40 * DAY);
      setPushedAt('ret/old', 'latest', now - 40 * DAY);
      setPushedAt('ret/old', 'new-1', now - 2 * DAY);
      const report = await gc({ gracePeriodSeconds: 0 });
      assert.deepEqual(report.tagsDeleted.items.filter((d) => d.repository === 'ret/old').map((d) => d.tag), ['old-1']);
      assert.deepEqual(await tags('ret/old'), ['latest', 'new-1']);
    });

    it('leaves alone a tag pushed again after the policy judged it', async () => {
      const image = await pushImage(t.app, 'ret/old', 'moving');
      setPushedAt('ret/old', 'moving', Date.now() - 40 * DAY);
      const rebuilt = await pushImage(t.app, 'ret/old', 'moving-rebuilt', 'moving again');
      assert.ok((await gc({ dryRun: true })).tagsDeleted.items.some((d) => d.tag === 'moving' && d.digest === image.digest));

      // Retention reads the tags, decides, and before the sweep applies it the tag is pushed again.
      const store = new SqliteLifecycleStore((t.assembled.registry.metadata as SqliteMetadataStore).db);
      const read = store.tagsOf.bind(store);
      store.tagsOf = async (repository: string) => {
        const tags = await read(repository);
        if (repository === 'ret/old') await pushManifest(t.app, 'ret/old', 'moving', rebuilt.body);
        return tags;
      };
      const report = await createLifecycle(t.assembled.registry, store, t.assembled.lifecycle.settings).gc.run({ gracePeriodSeconds: 0 });
      assert.equal(report.tagsDeleted.items.some((d) => d.tag === 'moving'), false, 'retention deleted a tag pushed after its decision');
      assert.equal((await request(t.app).get('/v2/ret/old/manifests/moving')).headers['docker-content-digest'], rebuilt.digest);
    });
  });
});
