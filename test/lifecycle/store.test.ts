/**
 * The deletion protocol at the store level, as every MetadataStore + LifecycleStore pair must
 * keep it (SQLite and PostgreSQL): claims protect a digest from marking, a marked blob can be neither
 * claimed nor linked until forgotten, orphans are marked only when nothing appeared meanwhile,
 * and leases admit one collection at a time.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { MetadataBackend } from '../../src/metadata/backend.js';
import { isRegistryError } from '../../src/registry/errors.js';
import type { BlobCutoffs, LifecycleStore } from '../../src/registry/lifecycle-store.js';
import type { Actor, MetadataStore } from '../../src/registry/ports.js';
import { manifestOf, openPostgresForTest, openSqliteForTest, POSTGRES_SKIP, type OpenedBackend } from '../helpers/metadata-backends.js';

const ACTOR: Actor = { name: 'tester', kind: 'user' };

function digestOf(seed: string): string {
  return `sha256:${createHash('sha256').update(seed).digest('hex')}`;
}

/** Cut-offs under which everything linked so far counts as old and every claim as live. */
function allOld(): BlobCutoffs {
  const now = Date.now() + 1000;
  return { now, graceCutoff: now, claimCutoff: 0 };
}

const BACKENDS: Array<{ name: string; skip: string | false; open: () => Promise<OpenedBackend<MetadataBackend>> }> = [
  { name: 'SQLite', skip: false, open: openSqliteForTest },
  { name: 'PostgreSQL', skip: POSTGRES_SKIP, open: () => openPostgresForTest() },
];

for (const backendKind of BACKENDS) describe(`deletion protocol (${backendKind.name})`, { skip: backendKind.skip }, () => {
  let opened: OpenedBackend<MetadataBackend>;
  let metadata: MetadataStore;
  let lifecycle: LifecycleStore;
  before(async () => {
    opened = await backendKind.open();
    metadata = opened.backend.metadata;
    lifecycle = opened.backend.lifecycle;
  });
  after(() => opened.cleanup());

  const repo = (label: string) => `store/${label}-${randomUUID().slice(0, 8)}`;

  it('a live claim keeps an unreferenced blob from being marked; a stale one does not', async () => {
    const blob = { digest: digestOf(randomUUID()), size: 5 };
    await metadata.linkBlob(repo('claimed'), blob, ACTOR);
    const claim = await metadata.claimBlob(blob.digest);
    assert.ok(claim);
    const marked = await lifecycle.markUnreferencedBlobs(allOld(), 10_000);
    assert.equal(marked.some((b) => b.digest === blob.digest), false, 'a claimed blob was marked');
    // A claim from a process that died long ago protects nothing.
    const stale = { ...allOld(), claimCutoff: Date.now() + 1000 };
    assert.ok((await lifecycle.markUnreferencedBlobs(stale, 10_000)).some((b) => b.digest === blob.digest));
    await lifecycle.forgetBlobs([blob.digest]);
    await metadata.releaseBlobClaim(claim);
  });

  it('a marked blob can be neither claimed nor linked until it is forgotten, and its links are gone', async () => {
    const name = repo('marked');
    const blob = { digest: digestOf(randomUUID()), size: 7 };
    await metadata.linkBlob(name, blob, ACTOR);
    const marked = await lifecycle.markUnreferencedBlobs(allOld(), 10_000);
    assert.ok(marked.some((b) => b.digest === blob.digest));
    assert.equal(await metadata.getRepositoryBlob(name, blob.digest), null, 'a marked blob kept its link');
    assert.equal(await metadata.claimBlob(blob.digest), null);
    await assert.rejects(metadata.linkBlob(repo('other'), blob, ACTOR), (error: unknown) => isRegistryError(error) && error.code === 'BLOB_UNKNOWN');
    assert.deepEqual(await lifecycle.markedBlobs(10_000), [blob]);

    await lifecycle.forgetBlobs([blob.digest]);
    assert.equal(await metadata.getBlob(blob.digest), null);
    const claim = await metadata.claimBlob(blob.digest);
    assert.ok(claim, 'a forgotten blob can be claimed again');
    await metadata.linkBlob(name, blob, ACTOR, claim);
    assert.deepEqual(await metadata.getRepositoryBlob(name, blob.digest), blob);
    assert.equal(await lifecycle.purgeStaleClaims(Date.now() + 1000), 0, 'linkBlob did not end its claim');
  });

  it('a blob a manifest references is never picked, nor a manifest push let through once its blob is marked', async () => {
    const name = repo('referenced');
    const layer = { digest: digestOf(randomUUID()), size: 3 };
    await metadata.linkBlob(name, layer, ACTOR);
    const manifest = manifestOf(`referenced-${layer.digest}`, [layer.digest]);
    await metadata.putManifest(name, manifest, 'v1', ACTOR);
    assert.equal((await lifecycle.markUnreferencedBlobs(allOld(), 10_000)).some((b) => b.digest === layer.digest), false);

    const other = repo('late');
    const late = { digest: digestOf(randomUUID()), size: 4 };
    await metadata.linkBlob(other, late, ACTOR);
    await lifecycle.markUnreferencedBlobs(allOld(), 10_000);
    await assert.rejects(
      metadata.putManifest(other, { ...manifest, references: [{ digest: late.digest, kind: 'blob' }] }, 'v1', ACTOR),
      (error: unknown) => isRegistryError(error) && error.code === 'MANIFEST_BLOB_UNKNOWN',
    );
    assert.equal(await metadata.resolveTag(other, 'v1'), null);
    await lifecycle.forgetBlobs([late.digest]);
  });

  it('marks an orphan file only when no record appeared and no live claim holds it', async () => {
    const [free, claimed, recorded] = [randomUUID(), randomUUID(), randomUUID()].map((seed) => ({ digest: digestOf(seed), size: 1 }));
    const claim = await metadata.claimBlob(claimed!.digest);
    assert.ok(claim);
    await metadata.linkBlob(repo('recorded'), recorded!, ACTOR);
    const marked = await lifecycle.markOrphans([free!, claimed!, recorded!], allOld());
    assert.deepEqual(marked, [free]);
    assert.equal(await metadata.claimBlob(free!.digest), null, 'a marked orphan was claimable');
    await lifecycle.forgetBlobs([free!.digest]);
    await metadata.releaseBlobClaim(claim);
  });

  it('admits one lease holder at a time, until it releases or its lease expires', async () => {
    assert.equal((await lifecycle.acquireLease('test', 'first', 60_000)).acquired, true);
    const refused = await lifecycle.acquireLease('test', 'second', 60_000);
    assert.deepEqual([refused.acquired, refused.holder], [false, 'first']);
    await lifecycle.releaseLease('test', 'second'); // not the holder: no effect
    assert.equal((await lifecycle.acquireLease('test', 'second', 60_000)).acquired, false);
    await lifecycle.releaseLease('test', 'first');
    assert.equal((await lifecycle.acquireLease('test', 'second', -1)).acquired, true);
    // An expired lease (its holder died) is taken over.
    assert.equal((await lifecycle.acquireLease('test', 'third', 60_000)).acquired, true);
    await lifecycle.releaseLease('test', 'third');
  });
});
