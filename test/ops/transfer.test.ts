/**
 * Image import (POST /api/v1/import, multipart to disk) and export (GET /api/v1/export/…) in
 * process: docker save and OCI layout archives made in the test, dedupe against blobs already
 * stored, the size cap, malformed archives, the admin guard, and export read back entry by entry.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { binaryParser } from '../helpers/app.js';
import { ADMIN_PASSWORD, basic, createOpsApp, dockerSaveEntries, imageParts, ociIndexEntries, ociLayoutEntries, readTarFile, sha256, writeTar, type OpsApp } from './support.js';

async function blobFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else found.push(full);
    }
  };
  await walk(path.join(root, 'blobs'));
  return found.sort();
}

describe('image import and export through the admin API', () => {
  let ops: OpsApp;
  let work: string;
  const parts = imageParts('app', ['first layer', 'second layer', 'third layer']);
  let dockerTar: string;
  let ociTar: string;
  let ociManifestDigest: string;

  before(async () => {
    ops = await createOpsApp();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-test-'));
    dockerTar = path.join(work, 'docker-save.tar');
    await writeTar(dockerTar, dockerSaveEntries(parts, 'example/app:1.0'));
    ociTar = path.join(work, 'oci-layout.tar');
    const layout = ociLayoutEntries(parts, '1.0');
    ociManifestDigest = layout.manifestDigest;
    await writeTar(ociTar, layout.entries);
  });
  after(async () => {
    await ops?.dispose();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const importArchive = (file: string, repository: string, tag: string) =>
    request(ops.app).post('/api/v1/import').field('repository', repository).field('tag', tag).attach('archive', file);

  it('imports a docker save archive as an OCI manifest over its uncompressed layers (digests = diff_ids)', async () => {
    const res = await importArchive(dockerTar, 'team/app', '1.0');
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.format, 'docker-archive');
    assert.equal(res.body.blobs, 4);
    assert.equal(res.body.blobsUploaded, 4);
    assert.equal(res.headers.location, `/v2/team/app/manifests/${res.body.digest}`);

    const manifest = await request(ops.app).get('/v2/team/app/manifests/1.0').buffer(true).parse(binaryParser);
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    const body = JSON.parse((manifest.body as Buffer).toString('utf8'));
    assert.equal(body.config.digest, parts.configDigest);
    assert.deepEqual(
      body.layers.map((layer: { digest: string }) => layer.digest),
      parts.layerDigests,
    );
    assert.ok(body.layers.every((layer: { mediaType: string }) => layer.mediaType === 'application/vnd.oci.image.layer.v1.tar'));
    const layer = await request(ops.app).get(`/v2/team/app/blobs/${parts.layerDigests[1]}`).buffer(true).parse(binaryParser);
    assert.equal(sha256(layer.body as Buffer), parts.layerDigests[1], 'the symlinked layer was imported with its content');
    assert.deepEqual(await fs.readdir(path.join(ops.root, 'imports')), [], 'the uploaded archive is removed after the import');
  });

  it('imports an OCI layout byte for byte and stores no blob twice', async () => {
    const before = await blobFiles(ops.root);
    const res = await importArchive(ociTar, 'other/app', 'stable');
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.format, 'oci-layout');
    assert.equal(res.body.digest, ociManifestDigest);
    assert.equal(res.body.blobsUploaded, 0, 'every layer and the config were already stored (by the docker save import)');
    assert.equal(res.body.blobsExisting, 4);
    assert.equal(res.body.bytesUploaded, 0);
    assert.deepEqual(await blobFiles(ops.root), before, 'no new blob file');
    const head = await request(ops.app).head('/v2/other/app/manifests/stable');
    assert.equal(head.headers['docker-content-digest'], ociManifestDigest);
  });

  it('reads gzip-compressed archives', async () => {
    const gz = path.join(work, 'oci-layout.tar.gz');
    await fs.writeFile(gz, gzipSync(await fs.readFile(ociTar)));
    const res = await importArchive(gz, 'gz/app', '1');
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.digest, ociManifestDigest);
  });

  it('exports a tag as an OCI layout tarball holding every manifest and blob', async () => {
    const res = await request(ops.app).get('/api/v1/export/other/app:stable').buffer(true).parse(binaryParser);
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/x-tar');
    assert.equal(res.headers['docker-content-digest'], ociManifestDigest);
    const file = path.join(work, 'export.tar');
    await fs.writeFile(file, res.body as Buffer);
    const files = await readTarFile(file);
    const index = JSON.parse(files.get('index.json')!.toString('utf8'));
    assert.equal(index.manifests[0].digest, ociManifestDigest);
    assert.equal(index.manifests[0].annotations['org.opencontainers.image.ref.name'], 'stable');
    assert.deepEqual(JSON.parse(files.get('oci-layout')!.toString('utf8')), { imageLayoutVersion: '1.0.0' });
    for (const digest of [ociManifestDigest, parts.configDigest, ...parts.layerDigests]) {
      const content = files.get(`blobs/sha256/${digest.slice(7)}`);
      assert.ok(content, `export holds ${digest}`);
      assert.equal(sha256(content), digest);
    }

    // And what was exported imports again to the same digest.
    const again = await importArchive(file, 'round/trip', 'x');
    assert.equal(again.status, 201, again.text);
    assert.equal(again.body.digest, ociManifestDigest);
  });

  it('exports by digest, and answers 404 for what is not there', async () => {
    const byDigest = await request(ops.app).get(`/api/v1/export/other/app@${ociManifestDigest}`).buffer(true).parse(binaryParser);
    assert.equal(byDigest.status, 200);
    const missingTag = await request(ops.app).get('/api/v1/export/other/app:nope');
    assert.equal(missingTag.status, 404);
    assert.equal(missingTag.body.errors[0].code, 'MANIFEST_UNKNOWN');
    const missingRepo = await request(ops.app).get('/api/v1/export/no/such:1');
    assert.equal(missingRepo.status, 404);
    const malformed = await request(ops.app).get('/api/v1/export/just-a-name');
    assert.equal(malformed.status, 400);
  });

  it('refuses archives that are not images, and requests without the fields', async () => {
    const notTar = path.join(work, 'not.tar');
    await fs.writeFile(notTar, 'this is not a tar archive at all, just some text'.repeat(20));
    const bad = await importArchive(notTar, 'x/y', '1');
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.body.errors[0].code, 'ARCHIVE_INVALID');

    const noImage = path.join(work, 'no-image.tar');
    await writeTar(noImage, [{ name: 'hello.txt', content: 'hi' }]);
    const empty = await importArchive(noImage, 'x/y', '1');
    assert.equal(empty.status, 400);
    assert.match(empty.body.errors[0].message, /neither index.json .* nor manifest.json/);

    const noTag = await request(ops.app).post('/api/v1/import').field('repository', 'x/y').attach('archive', ociTar);
    assert.equal(noTag.status, 400);
    assert.match(noTag.body.errors[0].message, /"tag" is required/);

    const noFile = await request(ops.app).post('/api/v1/import').field('repository', 'x/y').field('tag', '1');
    assert.equal(noFile.status, 400);

    const badName = await importArchive(ociTar, 'Bad Name', '1');
    assert.equal(badName.status, 400);
    assert.equal(badName.body.errors[0].code, 'NAME_INVALID');

    // A layer whose content does not match the image config is refused before anything is tagged.
    const tampered = path.join(work, 'tampered.tar');
    const entries = dockerSaveEntries(parts, 'example/app:1.0').map((entry) =>
      entry.name.endsWith('/layer.tar') && entry.content ? { ...entry, content: Buffer.concat([entry.content as Buffer, Buffer.alloc(512)]) } : entry,
    );
    await writeTar(tampered, entries);
    const refused = await importArchive(tampered, 'tampered/app', '1');
    assert.equal(refused.status, 400);
    assert.match(refused.body.errors[0].message, /but the image config says/);
    assert.equal((await request(ops.app).head('/v2/tampered/app/manifests/1')).status, 404);
  });

  it('chooses among several images with source, and says which there are otherwise', async () => {
    const second = imageParts('second', ['another']);
    const multi = path.join(work, 'multi.tar');
    const one = dockerSaveEntries(parts, 'example/app:1.0');
    const two = dockerSaveEntries(second, 'example/other:2.0');
    const list = [
      ...JSON.parse(String(one.find((e) => e.name === 'manifest.json')!.content)),
      ...JSON.parse(String(two.find((e) => e.name === 'manifest.json')!.content)),
    ];
    await writeTar(multi, [
      ...one.filter((e) => e.name !== 'manifest.json' && !e.name.startsWith('blobstore/') && !e.symlink),
      ...two.filter((e) => e.name !== 'manifest.json'),
      ...one.filter((e) => e.name.startsWith('blobstore/') || e.symlink),
      { name: 'manifest.json', content: JSON.stringify(list) },
    ]);
    const ambiguous = await importArchive(multi, 'multi/app', '1');
    assert.equal(ambiguous.status, 400);
    assert.match(ambiguous.body.errors[0].message, /holds 2 images.*example\/app:1\.0.*example\/other:2\.0/);
    const chosen = await request(ops.app).post('/api/v1/import').field('repository', 'multi/app').field('tag', '1').field('source', 'example/other:2.0').attach('archive', multi);
    assert.equal(chosen.status, 201, chosen.text);
    assert.equal(chosen.body.blobs, 2);
  });
});

describe('multi-platform images', () => {
  let ops: OpsApp;
  let work: string;
  const shared = 'a layer every platform shares';
  const platforms = ['amd64', 'arm64', 'riscv64'].map((architecture) => ({ architecture, parts: imageParts(`multi-${architecture}`, [shared, `${architecture} only`]) }));
  before(async () => {
    ops = await createOpsApp();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-multi-'));
  });
  after(async () => {
    await ops?.dispose();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const importEntries = async (name: string, entries: Parameters<typeof writeTar>[1], repository: string) => {
    const file = path.join(work, `${name}.tar`);
    await writeTar(file, entries);
    return request(ops.app).post('/api/v1/import').field('repository', repository).field('tag', 'latest').attach('archive', file);
  };

  it('imports a complete image index with its children, digests unchanged, and exports it whole', async () => {
    const layout = ociIndexEntries(platforms, 'latest');
    const res = await importEntries('full', layout.entries, 'multi/full');
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.digest, layout.indexDigest);
    assert.equal(res.body.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(res.body.manifests, 4);
    assert.equal(res.body.blobs, 7, 'three configs, three own layers and the shared one (once)');
    assert.deepEqual(res.body.notes, []);
    for (const digest of Object.values(layout.manifestDigests)) {
      assert.equal((await request(ops.app).head(`/v2/multi/full/manifests/${digest}`)).status, 200);
    }

    const exported = await request(ops.app).get('/api/v1/export/multi/full:latest').buffer(true).parse(binaryParser);
    const file = path.join(work, 'exported-index.tar');
    await fs.writeFile(file, exported.body as Buffer);
    const files = await readTarFile(file);
    for (const digest of [layout.indexDigest, ...Object.values(layout.manifestDigests)]) assert.ok(files.has(`blobs/sha256/${digest.slice(7)}`), digest);
    assert.equal([...files.keys()].filter((name) => name.startsWith('blobs/')).length, 11, 'one index, three manifests, seven blobs');
  });

  it('imports the one platform a Docker 25 style save holds, saying what it left out', async () => {
    const layout = ociIndexEntries(platforms, 'latest', ['arm64', 'riscv64']);
    const res = await importEntries('one', layout.entries, 'multi/one');
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.digest, layout.manifestDigests.amd64, 'the present platform is tagged');
    assert.equal(res.body.manifests, 1);
    assert.match(res.body.notes[0], /lists 3 manifests but the archive holds 1 completely; left out: linux\/arm64, linux\/riscv64/);
  });

  it('cuts an index down to the platforms present when there are several', async () => {
    const layout = ociIndexEntries(platforms, 'latest', ['riscv64']);
    const res = await importEntries('two', layout.entries, 'multi/two');
    assert.equal(res.status, 201, res.text);
    assert.notEqual(res.body.digest, layout.indexDigest);
    const index = await request(ops.app).get('/v2/multi/two/manifests/latest').buffer(true).parse(binaryParser);
    const listed = JSON.parse((index.body as Buffer).toString('utf8')) as { manifests: Array<{ digest: string; platform: { architecture: string } }> };
    assert.deepEqual(
      listed.manifests.map((m) => [m.platform.architecture, m.digest]),
      [
        ['amd64', layout.manifestDigests.amd64],
        ['arm64', layout.manifestDigests.arm64],
      ],
    );
    assert.match(res.body.notes[0], /left out: linux\/riscv64; tagged a new index/);
  });
});

describe('import limits and the admin guard', () => {
  it('refuses an archive over import.maxBytes with 413 and keeps nothing of it', async () => {
    const ops = await createOpsApp({ import: { maxBytes: 2048 } });
    const work = await fs.mkdtemp(path.join(os.tmpdir(), 'transfer-limit-'));
    try {
      const file = path.join(work, 'big.tar');
      const parts = imageParts('big', ['x'.repeat(10_000)]);
      await writeTar(file, ociLayoutEntries(parts, '1').entries);
      const res = await request(ops.app).post('/api/v1/import').field('repository', 'big/app').field('tag', '1').attach('archive', file);
      assert.equal(res.status, 413, res.text);
      assert.equal(res.body.errors[0].code, 'ARCHIVE_TOO_LARGE');
      assert.deepEqual(await fs.readdir(path.join(ops.root, 'imports')), []);
      assert.equal((await request(ops.app).get('/v2/_catalog')).body.repositories.length, 0);
    } finally {
      await ops.dispose();
      await fs.rm(work, { recursive: true, force: true });
    }
  });

  it('needs admin credentials when token auth is on', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD } });
    try {
      const anonymous = await request(ops.app).get('/api/v1/export/a/b:1');
      assert.equal(anonymous.status, 401);
      const upload = await request(ops.app).post('/api/v1/import').field('repository', 'a/b').field('tag', '1');
      assert.equal(upload.status, 401);
      const admin = await request(ops.app).get('/api/v1/export/a/b:1').set('Authorization', basic('admin', ADMIN_PASSWORD));
      assert.equal(admin.status, 404, 'past the guard: the image does not exist');
    } finally {
      await ops.dispose();
    }
  });
});
