/**
 * End-to-end proofs of the image lifecycle with the real registry process and skopeo:
 * - two images sharing layers, one deleted and collected: its unique layers leave the disk, the
 *   shared ones stay, and the other image still pulls and verifies;
 * - the messages skopeo users see from immutable tags and quotas;
 * - a blob damaged on disk is refused, found by fsck, repaired, and healed by pushing again;
 * - collections running in a loop (the schedule every second, plus the admin API) while skopeo
 *   keeps pushing images that share layers: afterwards every tagged image pulls and verifies,
 *   and nothing unreferenced is left on disk.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildOciImage, seededBytes, type BuiltImage, type LayerSpec } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { CommandError, hasCommand, type RunResult } from '../helpers/tools.js';
import { skopeoRunner } from '../helpers/skopeo.js';

const hasSkopeo = hasCommand('skopeo');
if (!hasSkopeo) console.log('lifecycle skopeo e2e skipped: skopeo not installed');
const KiB = 1024;

describe('image lifecycle with skopeo against the registry process', { skip: hasSkopeo ? false : 'skopeo not installed' }, () => {
  let work: string;
  let skopeo: (...args: string[]) => Promise<RunResult>;
  const base: LayerSpec = { file: 'base.bin', content: seededBytes('lifecycle-base', 96 * KiB) };
  const runtime: LayerSpec = { file: 'runtime.bin', content: seededBytes('lifecycle-runtime', 64 * KiB) };

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'lifecycle-e2e-'));
    skopeo = await skopeoRunner(path.join(work, 'skopeo-state'));
  });
  after(async () => {
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  /** An image of the shared layers plus one of its own. */
  const image = (name: string, own = seededBytes(`lifecycle-${name}`, 48 * KiB)) =>
    buildOciImage(path.join(work, `image-${name}`), [base, runtime, { file: `${name}.bin`, content: own }]);

  describe('one server, collections on demand', () => {
    let server: ServerProcess;
    before(async () => {
      const config = path.join(work, 'registry.yaml');
      await fs.writeFile(
        config,
        [
          'lifecycle:',
          '  gc:',
          '    intervalSeconds: 0',
          '  immutableTags:',
          '    - name: releases',
          "      repositories: ['proof/**']",
          "      tags: ['v*']",
          '  quotas:',
          '    - name: tiny',
          "      repositories: ['quota/*']",
          '      maxBytes: 64KiB',
        ].join('\n'),
      );
      server = await startServer({ env: { REGISTRY_CONFIG: config } });
    });
    after(async () => {
      await server?.stop();
    });

    const ref = (target: string) => `docker://${server.host}/${target}`;
    const push = (layout: BuiltImage, target: string) => skopeo('copy', '--dest-tls-verify=false', `oci:${layout.dir}:latest`, ref(target));

    it('deleting one of two images that share layers and collecting removes only its own blobs; the other still pulls', async () => {
      const a = await image('a');
      const b = await image('b');
      assert.deepEqual(a.layerDigests.slice(0, 2), b.layerDigests.slice(0, 2), 'fixture: two shared layers');
      await push(a, 'proof/app:a');
      await push(b, 'proof/app:b');
      await skopeo('delete', '--tls-verify=false', ref('proof/app:a'));

      const report = (await api(server, 'POST', '/api/v1/gc', { gracePeriodSeconds: 0 })) as {
        blobsDeleted: { items: Array<{ digest: string }> };
        bytesReclaimed: number;
      };
      const onlyA = [a.configDigest, a.layerDigests[2]!];
      console.log(`collected ${report.blobsDeleted.items.length} blobs, ${report.bytesReclaimed} bytes`);
      assert.deepEqual(report.blobsDeleted.items.map((blob) => blob.digest).sort(), [...onlyA].sort());
      for (const digest of onlyA) assert.equal(await exists(storedBlob(server.root, digest)), false, `${digest} is still on disk`);
      for (const digest of [b.configDigest, ...b.layerDigests]) assert.equal(await exists(storedBlob(server.root, digest)), true, `${digest} was deleted`);

      await pullAndVerify(skopeo, ref('proof/app:b'), b, path.join(work, 'pull-b'));
      await assert.rejects(skopeo('inspect', '--raw', '--tls-verify=false', ref('proof/app:a')));
    });

    it('skopeo users see DENIED naming the immutable rule, and may push the same digest again', async () => {
      const first = await image('release-1');
      const second = await image('release-2');
      await push(first, 'proof/app:v1.0');
      const refused = await push(second, 'proof/app:v1.0').then(
        () => assert.fail('pushing over an immutable tag succeeded'),
        (error: unknown) => error as CommandError,
      );
      console.log(`skopeo said: ${lastLine(refused.stderr)}`);
      assert.match(refused.stderr, /tag v1\.0 of proof\/app is immutable \(immutable tag rule \\?"releases\\?"\) and already points at sha256:/);
      await push(first, 'proof/app:v1.0');
      const deleted = await skopeo('delete', '--tls-verify=false', ref('proof/app:v1.0')).then(
        () => assert.fail('deleting an immutable tag succeeded'),
        (error: unknown) => error as CommandError,
      );
      assert.match(deleted.stderr, /immutable .* cannot be deleted/);
    });

    it('skopeo users see DENIED with how far over the quota a push would go', async () => {
      const big = await image('too-big', seededBytes('lifecycle-too-big', 80 * KiB));
      const refused = await push(big, 'quota/app:1').then(
        () => assert.fail('a push over the quota succeeded'),
        (error: unknown) => error as CommandError,
      );
      console.log(`skopeo said: ${lastLine(refused.stderr)}`);
      assert.match(refused.stderr, /quota exceeded: this push would bring quota\/app to .* over its quota of 64\.0 KiB \(65536 bytes\) \(quota \\?"tiny\\?"\)/);
    });

    it('a blob damaged on disk is refused, reported by fsck, repaired, and healed by pushing the image again', async () => {
      const c = await image('c');
      await push(c, 'proof/app:c');
      const own = c.layerDigests[2]!;
      await fs.truncate(storedBlob(server.root, own), 100);
      await assert.rejects(pullAndVerify(skopeo, ref('proof/app:c'), c, path.join(work, 'pull-c-damaged')), 'a damaged layer was served');

      const found = (await api(server, 'POST', '/api/v1/fsck', {})) as { findings: Array<{ kind: string; digest: string }> };
      assert.deepEqual(found.findings.map((f) => [f.kind, f.digest]), [['blob-damaged', own]]);
      const repaired = (await api(server, 'POST', '/api/v1/fsck', { repair: true })) as { repaired: number };
      assert.equal(repaired.repaired, 1);

      await push(c, 'proof/app:c');
      await pullAndVerify(skopeo, ref('proof/app:c'), c, path.join(work, 'pull-c-healed'));
      assert.deepEqual(((await api(server, 'POST', '/api/v1/fsck', {})) as { findings: unknown[] }).findings, []);
    });
  });

  describe('collections in a loop while pushes continue', () => {
    let server: ServerProcess;
    before(async () => {
      // The schedule collects every second, with no grace period: pushes in flight are exposed.
      server = await startServer({ env: { REGISTRY_LIFECYCLE_GC_INTERVAL_SECONDS: '1', REGISTRY_LIFECYCLE_GC_GRACE_PERIOD_SECONDS: '0' } });
    });
    after(async () => {
      await server?.stop();
    });

    it('every tagged image pulls and verifies afterwards, and nothing unreferenced remains', async () => {
      const ref = (target: string) => `docker://${server.host}/${target}`;
      const images: BuiltImage[] = [];
      for (let i = 0; i < 8; i++) images.push(await image(`loop-${i}`));
      const retried: string[] = [];

      let pushing = true;
      const collections = (async () => {
        let completed = 0;
        for (let i = 0; i < 60 && (pushing || completed < 10); i++) {
          const res = await fetch(`${server.url}/api/v1/gc`, { method: 'POST', body: '{"gracePeriodSeconds":0}', signal: AbortSignal.timeout(30_000) });
          const text = await res.text();
          if (res.status === 200) completed++;
          else assert.equal(res.status, 409, `POST /api/v1/gc: ${res.status} ${text}`); // the schedule was collecting
          await sleep(200);
        }
        return completed;
      })();
      try {
        for (const [i, built] of images.entries()) {
          for (let attempt = 0; ; attempt++) {
            try {
              await skopeo('copy', '--dest-tls-verify=false', `oci:${built.dir}:latest`, ref(`loop/app:${i}`));
              break;
            } catch (error) {
              const stderr = (error as CommandError).stderr ?? String(error);
              // The one clean failure a collection may cause: a blob collected before its manifest arrived.
              assert.match(stderr, /manifest blob unknown|MANIFEST_BLOB_UNKNOWN|blob unknown/i, `push ${i} failed otherwise:\n${stderr}`);
              // With no grace period a push may lose several times in a row; clients retry, backing off.
              assert.ok(attempt < 20, `push ${i} refused ${attempt + 1} times`);
              retried.push(`${i}`);
              await sleep(50 * (attempt + 1));
            }
          }
        }
      } finally {
        pushing = false;
      }
      const completed = await collections;
      console.log(`collections through the API: ${completed}; pushes retried after a collection: ${retried.length}`);
      assert.ok(completed >= 10, `only ${completed} collections completed`);
      // The schedule collects every second; while the API kept collecting it may have found the lease taken.
      let scheduled = false;
      for (let i = 0; i < 150 && !scheduled; i++) {
        const history = (await api(server, 'GET', '/api/v1/gc?limit=1000')) as { runs: Array<{ trigger: string }> };
        scheduled = history.runs.some((r) => r.trigger === 'schedule');
        if (!scheduled) await sleep(100);
      }
      assert.ok(scheduled, `the schedule never collected\n--- server output ---\n${server.output()}`);

      const used = new Set<string>();
      for (const [i, built] of images.entries()) {
        await pullAndVerify(skopeo, ref(`loop/app:${i}`), built, path.join(work, `pull-loop-${i}`));
        for (const digest of [built.configDigest, ...built.layerDigests]) used.add(digest);
      }
      // One last collection (the schedule may be running it: retry on 409, bounded).
      for (let i = 0; i < 100; i++) {
        const res = await fetch(`${server.url}/api/v1/gc`, { method: 'POST', body: '{"gracePeriodSeconds":0}', signal: AbortSignal.timeout(30_000) });
        await res.text();
        if (res.status === 200) break;
        await sleep(100);
      }
      assert.deepEqual(await storedBlobs(server.root), [...used].sort(), 'blob files on disk differ from what the tagged images use');
    });
  });
});

async function api(server: ServerProcess, method: string, pathname: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${server.url}${pathname}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: body === undefined ? undefined : { 'Content-Type': 'application/json' },
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${method} ${pathname}: ${res.status} ${text}`);
  return JSON.parse(text) as unknown;
}

/** Pulls with skopeo into an OCI layout and checks the manifest digest and every blob's content. */
async function pullAndVerify(skopeo: (...args: string[]) => Promise<RunResult>, source: string, built: BuiltImage, out: string): Promise<void> {
  await skopeo('copy', '--src-tls-verify=false', source, `oci:${out}:pulled`);
  const index = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  assert.equal(index.manifests[0]?.digest, built.manifestDigest, `${source} is another manifest`);
  for (const digest of [built.configDigest, ...built.layerDigests]) {
    assert.equal(await fileDigest(path.join(out, 'blobs', 'sha256', digest.slice('sha256:'.length))), digest, `${source}: blob ${digest} differs`);
  }
}

function storedBlob(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

async function storedBlobs(root: string): Promise<string[]> {
  const digests: string[] = [];
  const dir = path.join(root, 'blobs', 'sha256');
  for (const prefix of await fs.readdir(dir).catch(() => [] as string[])) {
    for (const hex of await fs.readdir(path.join(dir, prefix))) digests.push(`sha256:${hex}`);
  }
  return digests.sort();
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

async function fileDigest(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

