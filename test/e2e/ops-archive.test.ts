/**
 * End-to-end image import and export against the registry process, with archives skopeo writes
 * (`docker-archive:` — the docker save format — and `oci-archive:`): imported through the admin
 * API (multipart upload) and through `registry import`, pulled back with skopeo; exported through
 * the admin API and `registry export`, read back by skopeo.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { openAsBlob } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { PROJECT_ROOT, startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';

const hasSkopeo = hasCommand('skopeo');
if (!hasSkopeo) console.log('archive e2e skipped: skopeo not installed');

const BIN = path.join(PROJECT_ROOT, 'bin', 'registry.js');

interface Layout {
  manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
}

describe('import and export with skopeo archives', { skip: hasSkopeo ? false : 'skopeo not installed' }, () => {
  let server: ServerProcess;
  let work: string;
  let image: BuiltImage;
  let skopeo: Skopeo;
  let dockerArchive: string;
  let ociArchive: string;
  /** sha256 of each layer uncompressed (the diff_ids): what a docker save archive holds. */
  let diffIds: string[];

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'ops-archive-'));
    server = await startServer();
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    image = await buildOciImage(path.join(work, 'image'), [
      { file: 'base.bin', content: seededBytes('archive-base', 200 * 1024) },
      { file: 'app.bin', content: seededBytes('archive-app', 120 * 1024) },
    ]);
    const config = JSON.parse(await fs.readFile(path.join(image.dir, 'blobs', 'sha256', image.configDigest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } };
    diffIds = config.rootfs.diff_ids;
    dockerArchive = path.join(work, 'app-docker.tar');
    ociArchive = path.join(work, 'app-oci.tar');
    await skopeo('copy', `oci:${image.dir}:latest`, `docker-archive:${dockerArchive}:example/app:1.0`);
    await skopeo('copy', `oci:${image.dir}:latest`, `oci-archive:${ociArchive}:1.0`);
  });

  after(async () => {
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const ref = (target: string) => `docker://${server.host}/${target}`;

  async function importOverApi(file: string, repository: string, tag: string): Promise<Record<string, unknown>> {
    const form = new FormData();
    form.append('repository', repository);
    form.append('tag', tag);
    form.append('archive', await openAsBlob(file), path.basename(file));
    const res = await fetch(`${server.url}/api/v1/import`, { method: 'POST', body: form });
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(res.status, 201, JSON.stringify(body));
    return body;
  }

  /**
   * skopeo pull into a `dir:` destination, which keeps blobs exactly as served (an `oci:` one
   * would gzip uncompressed layers on the way); checks every blob against its digest.
   */
  async function pull(source: string, name: string): Promise<{ manifest: { config: { digest: string }; layers: Array<{ digest: string; mediaType: string }> }; manifestDigest: string }> {
    const dir = path.join(work, name);
    await skopeo('copy', '--src-tls-verify=false', ref(source), `dir:${dir}`);
    const raw = await fs.readFile(path.join(dir, 'manifest.json'));
    const manifest = JSON.parse(raw.toString('utf8')) as { config: { digest: string }; layers: Array<{ digest: string; mediaType: string }> };
    for (const digest of [manifest.config.digest, ...manifest.layers.map((layer) => layer.digest)]) {
      const bytes = await fs.readFile(path.join(dir, digest.slice(7)));
      assert.equal(sha256(bytes), digest, `pulled blob ${digest} is intact`);
    }
    return { manifest, manifestDigest: sha256(raw) };
  }

  it('imports a docker-archive (docker save format) through the admin API; skopeo pulls it', async () => {
    const result = await importOverApi(dockerArchive, 'imported/docker', '1.0');
    assert.equal(result.format, 'docker-archive');
    const pulled = await pull('imported/docker:1.0', 'pulled-docker');
    assert.equal(pulled.manifestDigest, result.digest);
    assert.equal(pulled.manifest.config.digest, image.configDigest, 'the image config (and so the image ID) is unchanged');
    assert.deepEqual(
      pulled.manifest.layers.map((layer) => layer.digest),
      diffIds,
      'layers are the uncompressed tars docker save holds: their digests are the diff_ids',
    );
    for (const layer of pulled.manifest.layers) assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar');
  });

  it('imports an oci-archive through the admin API byte for byte; skopeo pulls the same digests', async () => {
    const result = await importOverApi(ociArchive, 'imported/oci', '1.0');
    assert.equal(result.format, 'oci-layout');
    assert.equal(result.digest, image.manifestDigest);
    assert.equal(result.blobsExisting, 1, 'the config was already stored by the docker-archive import');
    const pulled = await pull('imported/oci:1.0', 'pulled-oci');
    assert.equal(pulled.manifestDigest, image.manifestDigest);
    assert.deepEqual(
      pulled.manifest.layers.map((layer) => layer.digest),
      image.layerDigests,
    );
  });

  it('`registry import` stores nothing twice: both archives again are all known blobs', async () => {
    const before = await server.metrics();
    for (const [file, repository] of [
      [dockerArchive, 'cli/docker'],
      [ociArchive, 'cli/oci'],
    ] as const) {
      const res = await cli(server.root, ['import', file, '--repository', repository, '--tag', 'v1', '--json']);
      assert.equal(res.code, 0, res.stderr);
      const result = JSON.parse(res.stdout) as { blobsUploaded: number; bytesUploaded: number };
      assert.equal(result.blobsUploaded, 0, `${repository}: every blob was already stored`);
      assert.equal(result.bytesUploaded, 0);
    }
    const after = await server.metrics();
    assert.equal(after['registry_blobs'], before['registry_blobs'], 'no new blob in storage');
    const pulled = await pull('cli/oci:v1', 'pulled-cli');
    assert.equal(pulled.manifestDigest, image.manifestDigest);
    // The server sees what the CLI imported (same storage root, database shared in WAL mode).
    const tags = (await (await fetch(`${server.url}/v2/cli/docker/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1']);
  });

  it('exports a tag through the admin API as an OCI archive that skopeo reads', async () => {
    const res = await fetch(`${server.url}/api/v1/export/imported/oci:1.0`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), image.manifestDigest);
    const file = path.join(work, 'exported-api.tar');
    await fs.writeFile(file, Buffer.from(await res.arrayBuffer()));
    const inspected = JSON.parse((await skopeo('inspect', '--raw', `oci-archive:${file}:1.0`)).stdout) as { layers: Array<{ digest: string }> };
    assert.deepEqual(
      inspected.layers.map((layer) => layer.digest),
      image.layerDigests,
    );
    const out = path.join(work, 'from-export');
    await skopeo('copy', `oci-archive:${file}:1.0`, `oci:${out}:x`);
    const layout = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as Layout;
    assert.equal(layout.manifests[0]!.digest, image.manifestDigest, 'skopeo copied the exported image unchanged');
  });

  it('`registry export` writes an OCI archive that skopeo reads and pushes back', async () => {
    const file = path.join(work, 'exported-cli.tar');
    const res = await cli(server.root, ['export', 'imported/docker:1.0', '--output', file]);
    assert.equal(res.code, 0, res.stderr);
    await skopeo('copy', '--dest-tls-verify=false', `oci-archive:${file}:1.0`, ref('roundtrip/docker:1.0'));
    const pulled = await pull('roundtrip/docker:1.0', 'pulled-roundtrip');
    assert.deepEqual(
      pulled.manifest.layers.map((layer) => layer.digest),
      diffIds,
    );
    const missing = await cli(server.root, ['export', 'imported/docker:nope', '--output', path.join(work, 'nope.tar')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /MANIFEST_UNKNOWN/);
    await assert.rejects(fs.stat(path.join(work, 'nope.tar')), 'no file is left behind');
    const bad = await cli(server.root, ['import', path.join(work, 'exported-cli.tar'), '--repository', 'Bad Name', '--tag', '1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /NAME_INVALID/);
  });
});

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function cli(root: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  Object.assign(env, { REGISTRY_STORAGE_ROOT: root, REGISTRY_AUTH: 'none' });
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: PROJECT_ROOT, env, timeout: 120_000, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}
