/**
 * The contract every MetadataStore must meet (SQLite and PostgreSQL): blob links,
 * upload sessions, manifests and tags, listings in ASCII order, and the event outbox written
 * with each change.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RegistryEvent } from '../../src/registry/events.js';
import type { Actor, MetadataStore, NewManifest } from '../../src/registry/ports.js';

export interface MetadataStoreFixture {
  store: MetadataStore;
  cleanup(): Promise<void>;
}

const ACTOR: Actor = { name: 'alice', kind: 'user' };
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function digestOf(seed: string): string {
  return `sha256:${createHash('sha256').update(seed).digest('hex')}`;
}

/** A manifest record as the domain would hand it over; unique per seed. */
function manifest(seed: string, extra: Partial<NewManifest> = {}): NewManifest {
  const content = Buffer.from(JSON.stringify({ schemaVersion: 2, seed }));
  return {
    digest: digestOf(content.toString()),
    mediaType: OCI_MANIFEST,
    size: content.length,
    content,
    subject: null,
    artifactType: null,
    annotations: null,
    references: [],
    ...extra,
  };
}

/** A fresh repository name per test, so tests never see each other's data. */
function repo(label: string): string {
  return `contract/${label}-${randomUUID().slice(0, 8)}`;
}

export function metadataStoreContract(name: string, makeStore: () => Promise<MetadataStoreFixture>, options: { skip?: string | false } = {}): void {
  describe(`MetadataStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let fixture: MetadataStoreFixture;
    let store: MetadataStore;
    before(async () => {
      fixture = await makeStore();
      store = fixture.store;
    });
    after(() => fixture.cleanup());

    async function lastSeq(): Promise<number> {
      let seq = 0;
      for (let page = 0; page < 1000; page++) {
        const events = await store.readEvents(seq, 500);
        if (events.length === 0) return seq;
        seq = events[events.length - 1]!.seq;
      }
      throw new Error('outbox too long for a test');
    }

    /** Runs `change` and returns the events it recorded. */
    async function eventsOf(change: () => Promise<unknown>): Promise<RegistryEvent[]> {
      const since = await lastSeq();
      await change();
      return store.readEvents(since, 100);
    }

    describe('blobs', () => {
      it('links a blob into a repository, creating the repository', async () => {
        const name = repo('link');
        const blob = { digest: digestOf(name), size: 42 };
        assert.equal(await store.repositoryExists(name), false);
        await store.linkBlob(name, blob, ACTOR);
        assert.equal(await store.repositoryExists(name), true);
        assert.deepEqual(await store.getRepositoryBlob(name, blob.digest), blob);
        assert.deepEqual(await store.getBlob(blob.digest), blob);
      });

      it('keeps a blob invisible to repositories it was not linked into', async () => {
        const blob = { digest: digestOf(randomUUID()), size: 1 };
        await store.linkBlob(repo('holder'), blob, ACTOR);
        assert.equal(await store.getRepositoryBlob(repo('stranger'), blob.digest), null);
      });

      it('linking twice is harmless', async () => {
        const name = repo('twice');
        const blob = { digest: digestOf(name), size: 3 };
        await store.linkBlob(name, blob, ACTOR);
        await store.linkBlob(name, blob, ACTOR);
        assert.deepEqual(await store.getRepositoryBlob(name, blob.digest), blob);
      });

      it('unlinks a blob from one repository only: true, then false', async () => {
        const [a, b] = [repo('a'), repo('b')];
        const blob = { digest: digestOf(a), size: 7 };
        await store.linkBlob(a, blob, ACTOR);
        await store.linkBlob(b, blob, ACTOR);
        assert.equal(await store.unlinkBlob(a, blob.digest), true);
        assert.equal(await store.getRepositoryBlob(a, blob.digest), null);
        assert.deepEqual(await store.getRepositoryBlob(b, blob.digest), blob);
        assert.equal(await store.unlinkBlob(a, blob.digest), false);
      });

      it('names the repositories holding a blob, up to the limit', async () => {
        const blob = { digest: digestOf(randomUUID()), size: 9 };
        const names = [repo('r1'), repo('r2'), repo('r3')];
        for (const name of names) await store.linkBlob(name, blob, ACTOR);
        assert.deepEqual((await store.repositoriesWithBlob(blob.digest, 10)).sort(), [...names].sort());
        assert.equal((await store.repositoriesWithBlob(blob.digest, 2)).length, 2);
        assert.deepEqual(await store.repositoriesWithBlob(digestOf('nobody has this'), 10), []);
      });

      it('records repository.created once, when a blob link creates the repository', async () => {
        const name = repo('created');
        const events = await eventsOf(async () => {
          await store.linkBlob(name, { digest: digestOf(`${name}1`), size: 1 }, ACTOR);
          await store.linkBlob(name, { digest: digestOf(`${name}2`), size: 1 }, ACTOR);
        });
        assert.deepEqual(events.map((e) => [e.type, e.repository]), [['repository.created', name]]);
        assert.deepEqual(events[0]!.actor, { name: 'alice', kind: 'user' });
      });
    });

    describe('upload sessions', () => {
      const newUpload = () => ({
        id: randomUUID(),
        repository: repo('upload'),
        createdAt: 1_700_000_000_000,
        updatedAt: 1_700_000_000_000,
        size: 0,
        driverState: null,
        hashState: null,
      });

      it('creates, reads and deletes a session', async () => {
        const session = newUpload();
        await store.createUpload(session);
        assert.deepEqual(await store.getUpload(session.id), session);
        await store.deleteUpload(session.id);
        assert.equal(await store.getUpload(session.id), null);
        await store.deleteUpload(session.id);
      });

      it('gives the writer lease to one writer at a time; the holder renews it, releases it, or loses it when it expires', async () => {
        const session = newUpload();
        await store.createUpload(session);
        const first = await store.leaseUpload(session.id, 'writer-a', 60_000);
        assert.equal(first.state, 'acquired');
        assert.deepEqual(first.state === 'acquired' && first.upload, session);
        assert.deepEqual(await store.leaseUpload(session.id, 'writer-b', 60_000), { state: 'busy' });
        assert.equal((await store.leaseUpload(session.id, 'writer-a', 60_000)).state, 'acquired', 'the holder renews');
        await store.releaseUpload(session.id, 'writer-b'); // not the holder: no effect
        assert.deepEqual(await store.leaseUpload(session.id, 'writer-b', 60_000), { state: 'busy' });
        await store.releaseUpload(session.id, 'writer-a');
        assert.equal((await store.leaseUpload(session.id, 'writer-b', 1)).state, 'acquired');
        await new Promise((resolve) => setTimeout(resolve, 5));
        assert.equal((await store.leaseUpload(session.id, 'writer-c', 60_000)).state, 'acquired', 'an expired lease is taken over');
        assert.deepEqual(await store.leaseUpload(randomUUID(), 'writer-a', 60_000), { state: 'unknown' });
      });

      it('saves progress only for the lease holder (compare-and-set)', async () => {
        const session = newUpload();
        await store.createUpload(session);
        assert.equal((await store.leaseUpload(session.id, 'writer-a', 60_000)).state, 'acquired');
        const update = { size: 42, driverState: '{"parts":[]}', hashState: 'state-at-42' };
        assert.equal(await store.saveUpload(session.id, 'writer-b', update), false, 'a writer without the lease');
        assert.equal((await store.getUpload(session.id))!.size, 0);
        assert.equal(await store.saveUpload(session.id, 'writer-a', update), true);
        const saved = (await store.getUpload(session.id))!;
        assert.deepEqual({ size: saved.size, driverState: saved.driverState, hashState: saved.hashState }, update);
        assert.ok(saved.updatedAt > session.updatedAt);
        await store.deleteUpload(session.id);
        assert.equal(await store.saveUpload(session.id, 'writer-a', update), false, 'a deleted upload');
      });
    });

    describe('manifests and tags', () => {
      it('stores a manifest byte for byte and resolves its tag', async () => {
        const name = repo('put');
        const m = manifest(name);
        await store.putManifest(name, m, 'v1', ACTOR);
        assert.equal(await store.resolveTag(name, 'v1'), m.digest);
        const got = await store.getManifest(name, m.digest);
        assert.ok(got);
        assert.ok(m.content.equals(got.content));
        assert.equal(got.mediaType, OCI_MANIFEST);
        assert.equal(got.size, m.size);
        assert.equal(await store.getManifest(repo('other'), m.digest), null);
      });

      it('returns previousTagDigest and records repository.created, tag.created, then tag.updated', async () => {
        const name = repo('tags');
        const [first, second] = [manifest(`${name}1`), manifest(`${name}2`)];
        let results: Array<{ repositoryCreated: boolean; previousTagDigest: string | null }> = [];
        const events = await eventsOf(async () => {
          results = [await store.putManifest(name, first, 'latest', ACTOR), await store.putManifest(name, second, 'latest', ACTOR)];
        });
        assert.deepEqual(results, [
          { repositoryCreated: true, previousTagDigest: null },
          { repositoryCreated: false, previousTagDigest: first.digest },
        ]);
        assert.deepEqual(
          events.map((e) => [e.type, e.tag, e.digest, e.previousDigest]),
          [
            ['repository.created', null, null, null],
            ['tag.created', 'latest', first.digest, null],
            ['tag.updated', 'latest', second.digest, first.digest],
          ],
        );
        const created = events[1]!;
        assert.equal(created.repository, name);
        assert.equal(created.mediaType, OCI_MANIFEST);
        assert.equal(created.size, first.size);
        assert.deepEqual(created.actor, { name: 'alice', kind: 'user' });
      });

      it('records no tag event when a tag is pushed again with the same digest', async () => {
        const name = repo('same');
        const m = manifest(name);
        await store.putManifest(name, m, 'stable', ACTOR);
        const events = await eventsOf(() => store.putManifest(name, m, 'stable', ACTOR));
        assert.deepEqual(events, []);
      });

      it('records no tag event for a push by digest', async () => {
        const name = repo('bydigest');
        await store.linkBlob(name, { digest: digestOf(name), size: 1 }, ACTOR);
        const result = await store.putManifest(name, manifest(name), null, ACTOR);
        assert.deepEqual(result, { repositoryCreated: false, previousTagDigest: null });
        const events = await eventsOf(() => store.putManifest(name, manifest(`${name}x`), null, ACTOR));
        assert.deepEqual(events, []);
      });

      it('deletes a tag (recording tag.deleted) and leaves the manifest', async () => {
        const name = repo('deltag');
        const m = manifest(name);
        await store.putManifest(name, m, 'gone', ACTOR);
        let deleted = false;
        const events = await eventsOf(async () => {
          deleted = await store.deleteTag(name, 'gone', ACTOR);
        });
        assert.equal(deleted, true);
        assert.deepEqual(events.map((e) => [e.type, e.repository, e.tag, e.digest]), [['tag.deleted', name, 'gone', m.digest]]);
        assert.equal(await store.resolveTag(name, 'gone'), null);
        assert.ok(await store.getManifest(name, m.digest));
        assert.equal(await store.deleteTag(name, 'gone', ACTOR), false);
        assert.equal(await store.deleteTag(repo('nowhere'), 'gone', ACTOR), false);
      });

      it('deletes a manifest with its tags, recording tag.deleted for each and manifest.deleted', async () => {
        const name = repo('delmanifest');
        const m = manifest(name);
        await store.putManifest(name, m, 'b', ACTOR);
        await store.putManifest(name, m, 'a', ACTOR);
        let tags: string[] | null = null;
        const events = await eventsOf(async () => {
          tags = await store.deleteManifest(name, m.digest, ACTOR);
        });
        assert.deepEqual(tags, ['a', 'b']);
        assert.deepEqual(
          events.map((e) => [e.type, e.tag, e.digest]),
          [
            ['tag.deleted', 'a', m.digest],
            ['tag.deleted', 'b', m.digest],
            ['manifest.deleted', null, m.digest],
          ],
        );
        assert.equal(await store.getManifest(name, m.digest), null);
        assert.equal(await store.resolveTag(name, 'a'), null);
        assert.equal(await store.deleteManifest(name, m.digest, ACTOR), null);
        assert.equal(await store.deleteManifest(repo('nowhere'), m.digest, ACTOR), null);
      });

      it('keeps a manifest shared by two repositories in the one not deleted from', async () => {
        const [a, b] = [repo('share-a'), repo('share-b')];
        const m = manifest(a);
        await store.putManifest(a, m, 'x', ACTOR);
        await store.putManifest(b, m, 'x', ACTOR);
        await store.deleteManifest(a, m.digest, ACTOR);
        assert.ok(await store.getManifest(b, m.digest));
        assert.equal(await store.resolveTag(b, 'x'), m.digest);
      });

      it('reads the manifest a tag points at in one lookup, and nothing for a tag elsewhere or gone', async () => {
        const [name, other] = [repo('tagged'), repo('tagged-other')];
        const [first, second] = [manifest(`${name}1`), manifest(`${name}2`)];
        await store.putManifest(name, first, 'v1', ACTOR);
        const got = await store.getTaggedManifest(name, 'v1');
        assert.ok(got);
        assert.equal(got.digest, first.digest);
        assert.ok(first.content.equals(got.content));
        assert.equal(got.mediaType, OCI_MANIFEST);
        await store.putManifest(name, second, 'v1', ACTOR);
        assert.equal((await store.getTaggedManifest(name, 'v1'))?.digest, second.digest, 'follows the tag when it moves');
        await store.putManifest(other, first, 'v2', ACTOR);
        assert.equal(await store.getTaggedManifest(name, 'v2'), null, "another repository's tag");
        assert.equal(await store.getTaggedManifest(repo('nowhere'), 'v1'), null);
        await store.deleteTag(name, 'v1', ACTOR);
        assert.equal(await store.getTaggedManifest(name, 'v1'), null);
      });
    });

    describe('listings', () => {
      it('lists tags in ASCII order, paged by limit and after', async () => {
        const name = repo('listtags');
        const m = manifest(name);
        for (const tag of ['b', 'A', 'a', 'B', '1', '_x', 'a.1']) await store.putManifest(name, m, tag, ACTOR);
        const all = ['1', 'A', 'B', '_x', 'a', 'a.1', 'b'];
        assert.deepEqual(await store.listTags(name, {}), all);
        assert.deepEqual(await store.listTags(name, { limit: 3 }), all.slice(0, 3));
        assert.deepEqual(await store.listTags(name, { limit: 3, after: 'B' }), all.slice(3, 6));
        assert.deepEqual(await store.listTags(name, { after: 'a.1' }), ['b']);
        assert.deepEqual(await store.listTags(name, { after: 'b' }), []);
        assert.deepEqual(await store.listTags(repo('notags'), {}), []);
      });

      it('lists repositories in ASCII order, paged by limit and after', async () => {
        const prefix = `zz-${randomUUID().slice(0, 8)}`;
        const names = [`${prefix}/b`, `${prefix}/a/x`, `${prefix}/a`, `${prefix}/a-b`];
        for (const name of names) await store.linkBlob(name, { digest: digestOf(name), size: 1 }, ACTOR);
        const sorted = [...names].sort();
        const page = await store.listRepositories({ after: `${prefix}/`, limit: 10 });
        assert.deepEqual(page.slice(0, 4), sorted);
        assert.deepEqual(await store.listRepositories({ after: sorted[0], limit: 2 }), sorted.slice(1, 3));
        const everything = await store.listRepositories({});
        assert.deepEqual(everything, [...everything].sort());
      });
    });

    describe('missing references', () => {
      it('finds the missing blobs and manifests among more than 500 digests', async () => {
        const name = repo('missing');
        const digests = Array.from({ length: 1203 }, (_, i) => digestOf(`${name}-${i}`));
        // Present ones straddle the 500-digest batch boundaries.
        const present = new Set([0, 499, 500, 501, 999, 1000, 1202].map((i) => digests[i]!));
        for (const digest of present) {
          await store.linkBlob(name, { digest, size: 1 }, ACTOR);
          await store.putManifest(name, manifest(digest, { digest }), null, ACTOR);
        }
        const expected = digests.filter((d) => !present.has(d));
        assert.deepEqual(await store.missingBlobs(name, digests), expected);
        assert.deepEqual(await store.missingManifests(name, digests), expected);
        assert.deepEqual(await store.missingBlobs(repo('empty'), digests.slice(0, 3)), digests.slice(0, 3));
      });

      it('reports a duplicate missing digest once, and nothing missing for an empty list', async () => {
        const name = repo('dupes');
        const d = digestOf(name);
        assert.deepEqual(await store.missingBlobs(name, [d, d]), [d]);
        assert.deepEqual(await store.missingManifests(name, []), []);
      });
    });

    describe('referrers', () => {
      it('lists manifests of the repository whose subject is the digest, filtered by artifactType', async () => {
        const name = repo('referrers');
        const subject = digestOf(`${name}-subject`);
        const sbom = manifest(`${name}-sbom`, { subject, artifactType: 'application/sbom', annotations: { k: 'v' } });
        const sig = manifest(`${name}-sig`, { subject, artifactType: 'application/sig' });
        await store.putManifest(name, sbom, null, ACTOR);
        await store.putManifest(name, sig, null, ACTOR);
        await store.putManifest(name, manifest(`${name}-unrelated`), null, ACTOR);
        const all = await store.listReferrers(name, subject);
        assert.deepEqual(all.map((r) => r.digest).sort(), [sbom.digest, sig.digest].sort());
        const filtered = await store.listReferrers(name, subject, 'application/sbom');
        assert.deepEqual(filtered, [{ digest: sbom.digest, mediaType: OCI_MANIFEST, size: sbom.size, artifactType: 'application/sbom', annotations: { k: 'v' } }]);
        assert.deepEqual(await store.listReferrers(repo('elsewhere'), subject), []);
      });
    });

    describe('outbox', () => {
      it('hands out events after a sequence number, oldest first, at most limit, with stable ids', async () => {
        const name = repo('outbox');
        const since = await lastSeq();
        for (const tag of ['t1', 't2', 't3']) await store.putManifest(name, manifest(`${name}-${tag}`), tag, ACTOR);
        const all = await store.readEvents(since, 100);
        assert.equal(all.length, 4); // repository.created + three tag.created
        for (let i = 1; i < all.length; i++) assert.ok(all[i]!.seq > all[i - 1]!.seq);
        assert.equal(new Set(all.map((e) => e.id)).size, all.length);
        const firstTwo = await store.readEvents(since, 2);
        assert.deepEqual(firstTwo, all.slice(0, 2));
        assert.deepEqual(await store.readEvents(firstTwo[1]!.seq, 100), all.slice(2));
        for (const event of all) assert.equal(typeof event.createdAt, 'number');
      });
    });
  });
}
