/**
 * The container image, built and run for real: `docker build` of the checkout's Dockerfile on
 * a local stand-in for the official node base (test/helpers/project-image.ts), then the image
 * runs on a real Docker engine: it holds only what runs, becomes healthy through its own
 * HEALTHCHECK, serves pushes and pulls (skopeo, token auth with the admin it creates), runs as
 * the unprivileged `node` user, stops gracefully on SIGTERM and keeps its data volume across a
 * restart and a replaced container.
 *
 * The build takes minutes (apt-get, npm ci, tsc: ~3 min here on a quiet machine; on first use
 * the base's debootstrap adds 0.5–2 min, cached after); the rest takes seconds.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { containerState, dockerEngineForSuite, freeLoopbackPort, waitForHealthy, type DockerEngine } from '../helpers/docker.js';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { buildProjectImage, nodeBaseUnavailable } from '../helpers/project-image.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';

const ADMIN_PASSWORD = 'image-e2e-admin-password';
const TAG = 'harbormaster-registry:e2e';
const VOLUME = 'registry-data';
const NAME = 'registry';

const noBase = nodeBaseUnavailable();
if (noBase) console.log(`container image e2e skipped: ${noBase}`);
const suite = noBase ? { engine: undefined, skip: noBase } : await dockerEngineForSuite('container image e2e', { needsBusybox: false });

describe('the container image, built and run on a real Docker engine', { skip: suite.skip }, () => {
  const engine = suite.engine as DockerEngine;
  const docker = (...args: string[]) => engine.docker(args);
  let port: number;
  let skopeo: Skopeo | null = null;
  let pushed: BuiltImage;

  before(async () => {
    const started = Date.now();
    const { timings } = await buildProjectImage(engine, TAG);
    console.log(`# image built: base ${timings.base.toFixed(1)} s, docker build ${timings.build.toFixed(1)} s, in all ${((Date.now() - started) / 1000).toFixed(1)} s`);
    port = await freeLoopbackPort();
    if (hasCommand('skopeo')) skopeo = await skopeoRunner(path.join(engine.workDir, 'skopeo'));
    pushed = await buildOciImage(path.join(engine.workDir, 'oci'), [
      { file: 'a.bin', content: seededBytes('image-e2e-a', 300 * 1024) },
      { file: 'b.bin', content: seededBytes('image-e2e-b', 100 * 1024) },
    ]);
  });

  after(async () => {
    await engine.stop();
  });

  /**
   * The registry on the host's loopback (--network=host: the engine has no bridge to publish
   * ports through). The probe interval is shortened from the image's 30 s so the first check
   * comes in a second; the image's own check command is what runs.
   */
  async function runRegistry(): Promise<void> {
    await docker(
      'run', '-d', '--name', NAME, '--network=host',
      '-e', `REGISTRY_HTTP_ADDR=127.0.0.1:${port}`,
      '-e', `REGISTRY_ADMIN_PASSWORD=${ADMIN_PASSWORD}`,
      '-v', `${VOLUME}:/var/lib/registry`,
      '--health-interval=1s',
      TAG,
    );
    await waitForHealthy(engine, NAME, 90_000);
  }

  const ref = (target: string) => `docker://127.0.0.1:${port}/${target}`;
  const creds = `admin:${ADMIN_PASSWORD}`;
  const remoteDigest = async (target: string) =>
    (JSON.parse((await skopeo!('inspect', '--tls-verify=false', '--creds', creds, ref(target))).stdout) as { Digest: string }).Digest;

  it('holds dist/, the production dependencies and the launchers; no sources, no dev dependencies (tsx, esbuild, TypeScript)', async () => {
    const app = (await docker('run', '--rm', '--network=none', '--entrypoint', 'ls', TAG, '/app')).stdout;
    assert.deepEqual(app.trim().split('\n').sort(), ['bin', 'config', 'dist', 'node_modules', 'package.json']);
    // Every package of the lockfile, looked for in the image.
    const lock = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    const packages = Object.entries(lock.packages).filter(([where]) => where.startsWith('node_modules/'));
    const script = 'for p in "$@"; do [ -e "/app/$p/package.json" ] && echo "$p"; done; true';
    const present = new Set((await docker('run', '--rm', '--network=none', '--entrypoint', 'sh', TAG, '-c', script, 'sh', ...packages.map(([where]) => where))).stdout.split('\n').filter(Boolean));
    const devInImage = packages.filter(([where, entry]) => entry.dev && present.has(where)).map(([where]) => where);
    assert.deepEqual(devInImage, [], 'dev dependencies in the image');
    const missing = packages.filter(([where, entry]) => !entry.dev && !entry.optional && !present.has(where)).map(([where]) => where);
    assert.deepEqual(missing, [], 'production dependencies missing from the image');
    for (const devOnly of ['tsx', 'esbuild', 'typescript']) assert.ok(lock.packages[`node_modules/${devOnly}`]?.dev, `${devOnly} is a dev dependency`);
    // The launchers run dist/ without tsx.
    assert.match((await docker('run', '--rm', '--network=none', TAG, 'registry', '--help')).stdout, /Usage: registry/);
    assert.match((await docker('run', '--rm', '--network=none', TAG, 'registry-agent', '--help')).stdout, /usage: registry-agent/);
  });

  it('becomes healthy through its HEALTHCHECK and runs as the unprivileged node user', async () => {
    const config = JSON.parse((await docker('image', 'inspect', '--format', '{{json .Config}}', TAG)).stdout) as {
      User: string;
      Healthcheck: { Test: string[] };
      Volumes: Record<string, unknown>;
    };
    assert.equal(config.User, 'node');
    assert.deepEqual(config.Healthcheck.Test, ['CMD', 'node', 'dist/healthcheck.js']);
    assert.deepEqual(Object.keys(config.Volumes), ['/var/lib/registry']);

    await runRegistry();
    // The registry process itself, seen from the host: real, effective, saved and filesystem uid.
    const pid = (await docker('inspect', '--format', '{{.State.Pid}}', NAME)).stdout.trim();
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.match(status, /^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
    const health = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(health.status, 200);
  });

  it('takes a push and serves the pull back (skopeo, token auth)', async (t) => {
    if (!skopeo) return t.skip('skopeo not installed');
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${pushed.dir}:latest`, ref('team/app:1.0'));
    assert.equal(await remoteDigest('team/app:1.0'), pushed.manifestDigest);
    const out = path.join(engine.workDir, 'pulled');
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds, ref('team/app:1.0'), `oci:${out}:pulled`);
    const index = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, pushed.manifestDigest);
    for (const layer of pushed.layerDigests) await fs.access(path.join(out, 'blobs', 'sha256', layer.slice('sha256:'.length)));
  });

  it('stops gracefully on SIGTERM and keeps its data volume across a restart and a new container', async (t) => {
    if (!skopeo) return t.skip('skopeo not installed');
    await docker('stop', '-t', '40', NAME);
    const stopped = await containerState(engine, NAME);
    assert.equal(stopped.ExitCode, 0, 'the registry exits 0 after a graceful shutdown');

    await docker('start', NAME);
    await waitForHealthy(engine, NAME, 90_000);
    assert.equal(await remoteDigest('team/app:1.0'), pushed.manifestDigest);

    // A new container (an upgrade) on the same volume: same data, and the admin is not created again.
    await docker('rm', '-f', NAME);
    await runRegistry();
    assert.equal(await remoteDigest('team/app:1.0'), pushed.manifestDigest);
    const log = await docker('logs', NAME);
    assert.doesNotMatch(log.stdout + log.stderr, /created the first admin account/);
  });
});
