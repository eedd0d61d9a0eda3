/**
 * End-to-end: the real registry process driven by podman, without a daemon. An OCI layout is
 * pulled into a throwaway podman store, pushed to the registry, removed locally and pulled
 * back; the image must come back as the same image (same ID, i.e. config and layer diff IDs)
 * under the digest the push reported.
 *
 * podman runs on a private store (--root/--runroot under a temp folder, vfs driver: it needs
 * no kernel overlay support, which sandboxes often lack). When podman is missing or cannot
 * run here, the suite is skipped with the preflight's output as the reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { CommandError, hasCommand, run, type RunResult } from '../helpers/tools.js';

const KiB = 1024;

interface Podman {
  dir: string;
  run(...args: string[]): Promise<RunResult>;
}

/** A podman on a private store under a fresh temp folder. */
async function privatePodman(): Promise<Podman> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'podman-e2e-'));
  for (const sub of ['root', 'run', 'tmp', 'home']) await fs.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
  const registriesConf = path.join(dir, 'registries.conf');
  await fs.writeFile(registriesConf, '');
  const policy = path.join(dir, 'policy.json');
  await fs.writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const globals = [
    '--root', path.join(dir, 'root'),
    '--runroot', path.join(dir, 'run'),
    '--tmpdir', path.join(dir, 'tmp'),
    '--storage-driver', 'vfs',
    '--events-backend', 'none',
    '--cgroup-manager', 'cgroupfs',
  ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: path.join(dir, 'home'),
    TMPDIR: path.join(dir, 'tmp'),
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    CONTAINERS_POLICY_JSON: policy,
  };
  return {
    dir,
    run: (...args: string[]) => {
      // `--signature-policy` is a hidden per-command flag of pull/push; the env var above covers the rest.
      const withPolicy = args[0] === 'pull' || args[0] === 'push' ? [args[0], '--signature-policy', policy, ...args.slice(1)] : args;
      return run('podman', [...globals, ...withPolicy], { env, timeoutMs: 90_000 });
    },
  };
}

/** Null when podman can work here, else why not (the failing preflight's output). */
async function preflight(): Promise<{ podman: Podman | null; skip: string | false }> {
  if (!hasCommand('podman')) return { podman: null, skip: 'podman not installed' };
  let podman: Podman | null = null;
  try {
    podman = await privatePodman();
    await podman.run('info');
    return { podman, skip: false };
  } catch (error) {
    if (podman) await fs.rm(podman.dir, { recursive: true, force: true });
    const detail = error instanceof CommandError ? error.stderr.trim() || error.message : String(error);
    return { podman: null, skip: `podman cannot run here: ${detail.split('\n').slice(-3).join(' | ')}` };
  }
}

const { podman, skip } = await preflight();
if (skip) console.log(`podman e2e skipped: ${skip}`);

describe('podman against the registry process', { skip }, () => {
  let server: ServerProcess;
  let work: string;
  let image: BuiltImage;
  const p = () => podman!;

  before(async () => {
    // podman names an image pulled from oci:DIR after DIR, and names must be lowercase.
    work = path.join(os.tmpdir(), `podman-e2e-layout-${randomBytes(8).toString('hex')}`);
    await fs.mkdir(work);
    server = await startServer();
    image = await buildOciImage(
      path.join(work, 'app'),
      [0, 1, 2].map((i) => ({ file: `layer-${i}.bin`, content: seededBytes(`podman-layer-${i}`, (150 + 40 * i) * KiB) })),
    );
  });

  after(async () => {
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
    if (podman) await fs.rm(podman.dir, { recursive: true, force: true });
  });

  it('pushes an image, removes it locally, pulls it back: same image under the pushed digest', async () => {
    const imageId = image.configDigest.slice('sha256:'.length);
    const target = `${server.host}/podman/app:1`;

    await p().run('pull', `oci:${image.dir}:latest`);
    const local = await inspect(imageId);
    assert.equal(local.Id, imageId, 'podman stored the layout image under its config digest');

    const digestFile = path.join(work, 'pushed-digest');
    await p().run('push', '--tls-verify=false', '--digestfile', digestFile, imageId, `docker://${target}`);
    const pushed = (await fs.readFile(digestFile, 'utf8')).trim();
    assert.match(pushed, /^sha256:[0-9a-f]{64}$/);

    // The registry serves the manifest podman pushed, under that digest, by tag.
    const response = await fetch(`${server.url}/v2/podman/app/manifests/1`, {
      headers: {
        Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
      },
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-content-digest'), pushed);
    const manifest = (await response.json()) as { config: { digest: string }; layers: unknown[] };
    assert.equal(manifest.config.digest, image.configDigest);
    assert.equal(manifest.layers.length, image.layerDigests.length);

    await p().run('rmi', '--force', imageId);
    await assert.rejects(p().run('image', 'exists', imageId), 'the image is gone from local storage');

    await p().run('pull', '--tls-verify=false', `docker://${target}`);
    const pulled = await inspect(target);
    assert.equal(pulled.Id, imageId, 'same image ID: same config, so same layer diff IDs');
    assert.equal(pulled.Digest, pushed, 'pulled under the digest the push reported');
    assert.ok(pulled.RepoDigests.includes(`${server.host}/podman/app@${pushed}`), `RepoDigests: ${pulled.RepoDigests.join(', ')}`);
    assert.deepEqual(pulled.RootFS.Layers, local.RootFS.Layers, 'identical layer contents (diff IDs)');
  });

  async function inspect(reference: string): Promise<{ Id: string; Digest: string; RepoDigests: string[]; RootFS: { Layers: string[] } }> {
    const [entry] = JSON.parse((await p().run('image', 'inspect', reference)).stdout) as {
      Id: string;
      Digest: string;
      RepoDigests: string[] | null;
      RootFS: { Layers: string[] };
    }[];
    assert.ok(entry, `podman image inspect ${reference} returned nothing`);
    return { ...entry, RepoDigests: entry.RepoDigests ?? [] };
  }
});
