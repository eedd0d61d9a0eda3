/**
 * End-to-end on S3: the real registry process with its blobs in a real radosgw, driven by
 * skopeo, with pulls streamed through the registry and with pulls redirected to the object
 * store; and a 512 MiB layer pushed and pulled with curl while the server's peak RSS (VmHWM,
 * the kernel's own high-water mark) stays under 150 MiB, with `npm start`'s node options.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand, run } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const missing = radosgwMissing ?? (hasCommand('skopeo') && hasCommand('curl') ? null : 'skopeo or curl not installed');
if (missing) console.log(`S3 e2e skipped: ${missing}`);

describe('the registry on S3, end to end', { skip: missing ?? false }, () => {
  let s3: S3Server;
  let work: string;
  let skopeo: Skopeo;
  let image: BuiltImage;
  const servers: ServerProcess[] = [];

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 's3-e2e-'));
    s3 = await startRadosgw();
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    // One layer above the 5 MiB part size, so the push goes through a multipart upload.
    image = await buildOciImage(path.join(work, 'image'), [
      { file: 'small.bin', content: seededBytes('s3-e2e-small', 300 * 1024) },
      { file: 'large.bin', content: seededBytes('s3-e2e-large', 7 * MiB) },
    ]);
  });
  after(async () => {
    for (const server of servers) await server.stop();
    await s3?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  async function serve(env: Record<string, string>, nodeArgs: string[] = []): Promise<ServerProcess> {
    const server = await startServer({ env: { ...s3.env(await s3.createBucket()), REGISTRY_STORAGE_S3_PART_SIZE: '5MiB', ...env }, nodeArgs });
    servers.push(server);
    return server;
  }

  async function pushAndPull(server: ServerProcess, name: string): Promise<void> {
    await skopeo('copy', '--dest-tls-verify=false', `oci:${image.dir}:latest`, `docker://${server.host}/${name}:1`);
    const out = path.join(work, `pulled-${name.replace('/', '-')}`);
    await skopeo('copy', '--src-tls-verify=false', `docker://${server.host}/${name}:1`, `oci:${out}:1`);
    for (const digest of [image.configDigest, ...image.layerDigests]) {
      const bytes = await fs.readFile(path.join(out, 'blobs', 'sha256', digest.slice(7)));
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest, `blob ${digest} pulled intact`);
    }
  }

  it('pushes and pulls with skopeo, pulls streamed through the registry', async () => {
    const server = await serve({});
    await pushAndPull(server, 'team/streamed');
    const metrics = await server.metrics();
    assert.ok(metrics.registry_served_bytes_total! > 7 * MiB, 'the layers went through the registry');
    assert.equal(metrics.registry_redirected_pulls_total, 0);
  });

  it('pushes and pulls with skopeo, pulls redirected to the object store', async () => {
    const server = await serve({ REGISTRY_STORAGE_REDIRECT_ENABLED: 'true' });
    await pushAndPull(server, 'team/redirected');
    const metrics = await server.metrics();
    assert.equal(metrics.registry_served_bytes_total, 0, 'no blob byte went through the registry');
    assert.ok(metrics.registry_redirected_pulls_total! >= 3, 'config and both layers were redirected');
  });

  it('pushes and pulls a 512 MiB layer with the server peak RSS under 150 MiB', async () => {
    const server = await serve({}, ['--max-semi-space-size=1']);
    const file = path.join(work, 'large-layer');
    const hash = createHash('sha256');
    const out = createWriteStream(file);
    for (let i = 0; i < 512; i++) {
      const chunk = randomBytes(MiB);
      hash.update(chunk);
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
    const digest = `sha256:${hash.digest('hex')}`;
    const started = await run('curl', ['-sS', '-f', '-D', '-', '-o', '/dev/null', '-X', 'POST', `${server.url}/v2/big/layer/blobs/uploads/`]);
    const location = new URL(/^location: (\S+)/im.exec(started.stdout)![1]!, server.url);
    const patched = await run('curl', ['-sS', '-f', '-D', '-', '-o', '/dev/null', '-X', 'PATCH', '-H', 'Content-Type: application/octet-stream', '-T', file, location.href], { timeoutMs: 600_000 });
    const next = new URL(/^location: (\S+)/im.exec(patched.stdout)![1]!, server.url);
    next.searchParams.set('digest', digest);
    await run('curl', ['-sS', '-f', '-o', '/dev/null', '-X', 'PUT', next.href], { timeoutMs: 300_000 });
    // The pull is hashed as it arrives: every byte of it, in its place.
    const pulled = await run('sh', ['-c', `curl -sS -f '${server.url}/v2/big/layer/blobs/${digest}' | sha256sum`], { timeoutMs: 600_000 });
    assert.equal(`sha256:${pulled.stdout.split(' ')[0]}`, digest);
    const status = await fs.readFile(`/proc/${server.child.pid}/status`, 'utf8');
    const peak = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
    console.log(`512 MiB layer on S3: server peak RSS ${(peak / MiB).toFixed(1)} MiB`);
    assert.ok(peak < 150 * MiB, `peak RSS ${(peak / MiB).toFixed(1)} MiB`);
    await fs.rm(file, { force: true });
  });
});
