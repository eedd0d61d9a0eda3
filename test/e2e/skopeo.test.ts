/**
 * End-to-end: the real registry process driven by skopeo. Pushes and pulls OCI layouts built
 * on the fly, and reads the server's own counters to show which bytes actually crossed the
 * wire (layer reuse, cross-repository links, HEAD-linking).
 *
 * The cases run in order against one server and build on each other (1.0 is pushed by the
 * first, reused by later ones). Every skopeo run gets a private blob-info cache (see
 * `skopeoEnvironment`), so nothing a previous run learnt can change what it sends.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildOciImage, buildOciIndex, seededBytes, type BuiltImage, type BuiltIndex, type LayerSpec } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { CommandError, hasCommand, type RunResult } from '../helpers/tools.js';
import { skopeoRunner } from '../helpers/skopeo.js';

const hasSkopeo = hasCommand('skopeo');
if (!hasSkopeo) console.log('skopeo e2e skipped: skopeo not installed');
const KiB = 1024;
const MiB = 1024 * KiB;

const UPLOADED = 'registry_upload_bytes_total';
const MOUNTED = 'registry_blobs_mounted_total';
const COMMITTED = 'registry_blobs_committed_total';
const SERVED = 'registry_served_bytes_total';

describe('skopeo against the registry process', { skip: hasSkopeo ? false : 'skopeo not installed' }, () => {
  let server: ServerProcess;
  let work: string;
  /** skopeo with a private blob-info cache that lives for the whole suite. */
  let skopeo: (...args: string[]) => Promise<RunResult>;
  let image10: BuiltImage;
  let image11: BuiltImage;
  const layers10: LayerSpec[] = [0, 1, 2, 3].map((i) => ({ file: `layer-${i}.bin`, content: seededBytes(`app-layer-${i}`, (200 + 50 * i) * KiB) }));
  const layers11: LayerSpec[] = [...layers10.slice(0, 3), { file: 'layer-3.bin', content: seededBytes('app-layer-3-v1.1', 260 * KiB) }];

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'skopeo-e2e-'));
    server = await startServer();
    skopeo = await skopeoRunner(path.join(work, 'skopeo-state'));
    image10 = await buildOciImage(path.join(work, 'app-1.0'), layers10);
    image11 = await buildOciImage(path.join(work, 'app-1.1'), layers11);
  });

  after(async () => {
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const ref = (repositoryAndTag: string) => `docker://${server.host}/${repositoryAndTag}`;
  const push = (source: string, target: string, ...flags: string[]) =>
    skopeo('copy', ...flags, '--dest-tls-verify=false', source, ref(target));
  const pull = (source: string, target: string, ...flags: string[]) =>
    skopeo('copy', ...flags, '--src-tls-verify=false', ref(source), target);
  const rawManifest = async (target: string) => (await skopeo('inspect', '--raw', '--tls-verify=false', ref(target))).stdout;

  it('pushes a 4-layer OCI image and pulls it back identical', async () => {
    await push(`oci:${image10.dir}:latest`, 'team/app:1.0');

    const raw = await rawManifest('team/app:1.0');
    assert.equal(sha256(raw), image10.manifestDigest, 'the registry serves the pushed manifest byte for byte');

    const out = path.join(work, 'pull-1.0');
    const before = await server.metrics();
    await pull('team/app:1.0', `oci:${out}:1.0`);
    const delta = diff(before, await server.metrics());
    const config = await blobSize(image10.dir, image10.configDigest);
    report('case 1 (pull team/app:1.0)', { served: delta[SERVED], layers: sum(image10.layerSizes), config });
    assert.equal(delta[SERVED], sum(image10.layerSizes) + config, 'the server counted every blob byte it served');
    assert.equal(await layoutTagDigest(out, '1.0'), image10.manifestDigest);
    for (const digest of [image10.configDigest, ...image10.layerDigests]) {
      await assertSameBlob(image10.dir, out, digest);
    }
  });

  it('pushing a second tag that shares 3 of 4 layers uploads only the new layer and config', async () => {
    assert.deepEqual(image11.layerDigests.slice(0, 3), image10.layerDigests.slice(0, 3), 'fixture: three shared layers');
    const before = await server.metrics();
    await push(`oci:${image11.dir}:latest`, 'team/app:1.1');
    const delta = diff(before, await server.metrics());

    const shared = sum(image11.layerSizes.slice(0, 3));
    const newLayer = image11.layerSizes[3]!;
    const config = await blobSize(image11.dir, image11.configDigest);
    report('case 2 (team/app:1.1 over 1.0)', { uploaded: delta[UPLOADED], newLayer, config, sharedLayers: shared });
    assert.ok(delta[UPLOADED]! < shared, `uploaded ${delta[UPLOADED]} bytes, not less than the ${shared} bytes of shared layers`);
    assert.ok(delta[UPLOADED]! >= newLayer, `uploaded ${delta[UPLOADED]} bytes, less than the new layer's ${newLayer}`);
    assert.equal(delta[UPLOADED], newLayer + config, 'exactly the new layer and the new config were uploaded');
    assert.equal(delta[COMMITTED], 2, 'two new blobs committed: the layer and the config');

    assert.equal(sha256(await rawManifest('team/app:1.1')), image11.manifestDigest);
    const out = path.join(work, 'pull-1.1');
    await pull('team/app:1.1', `oci:${out}:1.1`);
    assert.equal(await layoutTagDigest(out, '1.1'), image11.manifestDigest);
    for (const digest of [image11.configDigest, ...image11.layerDigests]) await assertSameBlob(image11.dir, out, digest);
  });

  it('copying to another repository re-sends no layer bytes, and the copy pulls identical', async () => {
    const before = await server.metrics();
    await skopeo('copy', '--src-tls-verify=false', '--dest-tls-verify=false', ref('team/app:1.0'), ref('other/app:1.0'));
    const delta = diff(before, await server.metrics());
    const config = await blobSize(image10.dir, image10.configDigest);
    report('case 3 (docker://team/app:1.0 -> docker://other/app:1.0)', {
      uploaded: delta[UPLOADED],
      mounted: delta[MOUNTED],
      layers: sum(image10.layerSizes),
      config,
    });
    assert.ok(delta[UPLOADED]! <= config, `uploaded ${delta[UPLOADED]} bytes; at most the ${config}-byte config was allowed`);
    assert.equal(delta[UPLOADED], 0, 'nothing at all was uploaded');
    assert.ok(delta[MOUNTED]! >= image10.layerDigests.length, `only ${delta[MOUNTED]} blobs were linked into other/app`);

    assert.equal(sha256(await rawManifest('other/app:1.0')), image10.manifestDigest);
    const out = path.join(work, 'pull-other');
    await pull('other/app:1.0', `oci:${out}:1.0`);
    assert.equal(await layoutTagDigest(out, '1.0'), image10.manifestDigest);
    for (const digest of [image10.configDigest, ...image10.layerDigests]) await assertSameBlob(image10.dir, out, digest);
  });

  it('a client with an empty blob cache pushing known blobs into a new repository sends none: HEAD links them', async () => {
    // A separate skopeo state: its blob-info cache has never seen this registry, so skopeo
    // cannot ask for a cross-repository mount; only the registry answering HEAD can spare the upload.
    const fresh = await skopeoRunner(path.join(work, 'skopeo-fresh'));
    const before = await server.metrics();
    const { stderr } = await fresh('--debug', 'copy', '--dest-tls-verify=false', `oci:${image10.dir}:latest`, ref('fresh/app:1.0'));
    const delta = diff(before, await server.metrics());
    report('case 3b (fresh cache, oci:app-1.0 -> fresh/app:1.0)', { uploaded: delta[UPLOADED], mounted: delta[MOUNTED] });
    assert.doesNotMatch(stderr, /mount=/, 'skopeo attempted a cross-repository mount, so its cache was not empty');
    assert.equal(delta[UPLOADED], 0, 'no blob bytes were uploaded');
    assert.equal(delta[MOUNTED], image10.layerDigests.length + 1, 'every layer and the config were linked on HEAD');
    assert.equal(sha256(await fresh('inspect', '--raw', '--tls-verify=false', ref('fresh/app:1.0')).then((r) => r.stdout)), image10.manifestDigest);
  });

  it('control: with HEAD-linking disabled, an empty-cache push re-sends every blob; a cache-aware copy mounts instead', async () => {
    const plain = await startServer({ env: { REGISTRY_API_LINK_KNOWN_BLOBS_ON_HEAD: 'false' } });
    try {
      const fresh = await skopeoRunner(path.join(work, 'skopeo-control'));
      const target = (repository: string) => `docker://${plain.host}/${repository}`;
      await fresh('copy', '--dest-tls-verify=false', `oci:${image10.dir}:latest`, target('team/app:1.0'));
      const control = await skopeoRunner(path.join(work, 'skopeo-control-2'));
      const before = await plain.metrics();
      await control('copy', '--dest-tls-verify=false', `oci:${image10.dir}:latest`, target('elsewhere/app:1.0'));
      const delta = diff(before, await plain.metrics());
      const all = sum(image10.layerSizes) + (await blobSize(image10.dir, image10.configDigest));
      report('case 3c (control, HEAD-linking off)', { uploaded: delta[UPLOADED], allBlobs: all });
      assert.equal(delta[UPLOADED], all);
      assert.equal(delta[MOUNTED], 0);

      // The client-driven path still works without HEAD-linking: a skopeo that knows where the
      // blobs live (its cache saw the push above) asks for `?mount=…&from=team/app`.
      const beforeMount = await plain.metrics();
      const { stderr } = await fresh('--debug', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', target('team/app:1.0'), target('mounted/app:1.0'));
      const mounted = diff(beforeMount, await plain.metrics());
      report('case 3d (cross-repository mount, HEAD-linking off)', { uploaded: mounted[UPLOADED], mounted: mounted[MOUNTED] });
      const requests = `\n--- skopeo's requests ---\n${clientRequests(stderr)}\n--- server output ---\n${plain.output()}`;
      assert.match(stderr, /mount=sha256/, 'skopeo asked for a cross-repository mount');
      // skopeo mounts layers only; the config it checks with HEAD alone, so here it is re-sent.
      assert.ok(mounted[UPLOADED]! <= (await blobSize(image10.dir, image10.configDigest)), `layer bytes were re-sent${requests}`);
      assert.equal(mounted[MOUNTED], image10.layerDigests.length, `not every layer was mounted${requests}`);
    } finally {
      await plain.stop();
    }
  });

  it('converts to Docker schema 2 on push (--format v2s2) and round-trips it', async () => {
    await push(`oci:${image10.dir}:latest`, 'v2s2/app:1', '--format', 'v2s2');
    const raw = await rawManifest('v2s2/app:1');
    const manifest = JSON.parse(raw) as { mediaType: string; config: { mediaType: string; digest: string }; layers: { mediaType: string; digest: string }[] };
    assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(manifest.config.mediaType, 'application/vnd.docker.container.image.v1+json');
    assert.deepEqual(
      manifest.layers.map((layer) => layer.mediaType),
      image10.layerDigests.map(() => 'application/vnd.docker.image.rootfs.diff.tar.gzip'),
    );
    assert.deepEqual(manifest.layers.map((layer) => layer.digest), image10.layerDigests, 'the same layer blobs, relabelled');

    // dir: keeps the manifest exactly as served (an OCI layout would convert it back).
    const out = path.join(work, 'pull-v2s2');
    await pull('v2s2/app:1', `dir:${out}`);
    assert.equal(await fs.readFile(path.join(out, 'manifest.json'), 'utf8'), raw);
    for (const digest of [manifest.config.digest, ...image10.layerDigests]) {
      const pulled = path.join(out, digest.slice('sha256:'.length));
      assert.equal(await fileDigest(pulled), digest);
      assert.equal(await fileDigest(blobPath(image10.dir, digest)), digest);
    }
  });

  it('pushes a multi-platform index with --all and pulls every child back', async () => {
    const shared: LayerSpec = { file: 'shared.txt', content: seededBytes('multi-shared', 64 * KiB) };
    const index: BuiltIndex = await buildOciIndex(path.join(work, 'multi'), [
      { architecture: 'amd64', layers: [shared, { file: 'amd64.bin', content: seededBytes('multi-amd64', 96 * KiB) }] },
      { architecture: 'arm64', layers: [shared, { file: 'arm64.bin', content: seededBytes('multi-arm64', 80 * KiB) }] },
    ]);
    await push(`oci:${index.dir}:latest`, 'multi/app:1', '--all');

    const raw = await rawManifest('multi/app:1');
    assert.equal(sha256(raw), index.indexDigest, 'the index is served byte for byte');
    const served = JSON.parse(raw) as { mediaType: string; manifests: { digest: string; platform: { architecture: string; os: string } }[] };
    assert.equal(served.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(
      served.manifests.map((m) => [m.platform.os, m.platform.architecture, m.digest]),
      index.images.map((image) => ['linux', image.architecture, image.manifestDigest]),
    );

    const arm64 = index.images[1]!;
    const picked = JSON.parse(
      (await skopeo('--override-arch', 'arm64', '--override-os', 'linux', 'inspect', '--tls-verify=false', ref('multi/app:1'))).stdout,
    ) as { Digest: string; Architecture: string; Layers: string[] };
    // skopeo reports the digest of what the tag names (the index) and the details of the child it picked.
    assert.equal(picked.Digest, index.indexDigest);
    assert.equal(picked.Architecture, 'arm64', 'a client asking for arm64 resolves the arm64 child');
    assert.deepEqual(picked.Layers, arm64.layerDigests);

    const out = path.join(work, 'pull-multi');
    await pull('multi/app:1', `oci:${out}:1`, '--all');
    assert.equal(await layoutTagDigest(out, '1'), index.indexDigest);
    await assertSameBlob(index.dir, out, index.indexDigest);
    for (const image of index.images) {
      for (const digest of [image.manifestDigest, image.configDigest, ...image.layerDigests]) await assertSameBlob(index.dir, out, digest);
    }
  });

  it('skopeo delete of a child an index lists is refused, and skopeo prints the message that says why and what to do', async () => {
    const served = JSON.parse(await rawManifest('multi/app:1')) as { manifests: { digest: string }[] };
    const child = served.manifests[0]!.digest;
    const refused = await skopeo('delete', '--tls-verify=false', ref(`multi/app@${child}`)).then(
      () => assert.fail('the delete was accepted'),
      (error: unknown) => (error instanceof CommandError ? error : assert.fail(String(error))),
    );
    // MANIFEST_REFERENCED is not a spec code: skopeo 1.9 prints the body, newer ones `unknown: <message>`.
    assert.match(refused.stderr, /is listed by index sha256:[0-9a-f]{64} in multi\/app; delete the index first, or delete with \?force=true/);
    assert.match(refused.stderr, /409/);
    assert.equal(JSON.parse(await rawManifest(`multi/app@${child}`)).schemaVersion, 2, 'the refused delete kept the manifest');
  });

  it('lists the tags pushed to a repository', async () => {
    const { stdout } = await skopeo('list-tags', '--tls-verify=false', ref('team/app'));
    const listed = JSON.parse(stdout) as { Repository: string; Tags: string[] };
    assert.deepEqual([...listed.Tags].sort(), ['1.0', '1.1']);
  });

  it('pushes and pulls a 64 MiB incompressible layer byte-identical', async () => {
    const big = await buildOciImage(path.join(work, 'big'), [{ file: 'big.bin', content: seededBytes('big-layer', 64 * MiB) }]);
    const layer = big.layerDigests[0]!;
    const before = await server.metrics();
    await push(`oci:${big.dir}:latest`, 'big/app:1');
    const out = path.join(work, 'pull-big');
    await pull('big/app:1', `oci:${out}:1`);
    const delta = diff(before, await server.metrics());
    report('case 7 (64 MiB layer)', { layerSize: big.layerSizes[0], uploaded: delta[UPLOADED], served: delta[SERVED] });

    assert.equal(await layoutTagDigest(out, '1'), big.manifestDigest);
    assert.equal((await fs.stat(blobPath(out, layer))).size, big.layerSizes[0]);
    assert.equal(await fileDigest(blobPath(out, layer)), layer, 'the pulled layer hashes to its digest');
    await assertSameBlob(big.dir, out, big.configDigest);
    assert.ok(delta[UPLOADED]! >= big.layerSizes[0]!, 'the layer went through an upload');
    assert.equal(delta[SERVED], big.layerSizes[0]! + (await blobSize(big.dir, big.configDigest)), 'the layer and config were served once');
  });
});


/** The HTTP requests and reuse decisions in a `skopeo --debug` log, for failure messages. */
function clientRequests(debugLog: string): string {
  return debugLog
    .split('\n')
    .filter((line) => /msg="(HEAD|GET|POST|PUT|PATCH|DELETE) http|mount|Mount|[Ff]ail|reuse|not present/.test(line))
    .map((line) => line.replace(/^time="[^"]*" level=\w+ /, ''))
    .join('\n');
}

function sha256(text: string | Buffer): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

function blobPath(layout: string, digest: string): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return path.join(layout, 'blobs', algorithm, hex);
}

async function blobSize(layout: string, digest: string): Promise<number> {
  return (await fs.stat(blobPath(layout, digest))).size;
}

/** sha256 of a file, streamed. */
async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/** The blob is in both layouts with the same bytes (same size, and both hash to `digest`). */
async function assertSameBlob(sourceLayout: string, pulledLayout: string, digest: string): Promise<void> {
  const [source, pulled] = [blobPath(sourceLayout, digest), blobPath(pulledLayout, digest)];
  const pulledStat = await fs.stat(pulled).catch(() => null);
  assert.ok(pulledStat, `blob ${digest} missing from the pulled layout`);
  assert.equal(pulledStat.size, (await fs.stat(source)).size, `blob ${digest} has a different size`);
  assert.equal(await fileDigest(pulled), digest, `pulled blob ${digest} has different content`);
  assert.equal(await fileDigest(source), digest);
}

/** The digest index.json of an OCI layout gives for a tag. */
async function layoutTagDigest(layout: string, tag: string): Promise<string> {
  const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations?: Record<string, string> }[];
  };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `tag ${tag} not in ${layout}/index.json`);
  return entry.digest;
}

function diff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((key) => [key, after[key]! - (before[key] ?? 0)]));
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

/** Prints measured numbers into the test output (as TAP comments). */
function report(label: string, numbers: Record<string, number | undefined>): void {
  console.log(`${label}: ${Object.entries(numbers).map(([key, value]) => `${key}=${value}`).join(' ')}`);
}
