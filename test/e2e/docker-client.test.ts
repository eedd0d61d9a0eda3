/**
 * The Docker engine and client against the registry process with token auth: `docker login`
 * as a user and as a robot (the registry's refresh token is what docker keeps, never the
 * password), `docker push` and `docker pull` of images built FROM scratch with busybox and a
 * HEALTHCHECK, pulled images that run and become healthy, a robot held to its grants, anonymous
 * pulls of public repositories, and a multi-platform list made and pushed with
 * `docker manifest`, pulled per platform. Debian's docker.io client (20.10) is checked beside
 * the one on PATH when they differ.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  buildScratchImage,
  buildServiceImage,
  containerImageDigests,
  dockerEngineForSuite,
  dockerLogin,
  pushImage,
  repoDigests,
  waitForHealthy,
  type DockerEngine,
} from '../helpers/docker.js';
import { adminApi } from '../helpers/admin-api.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { CommandError } from '../helpers/tools.js';

const ADMIN_PASSWORD = 'docker-e2e-admin-password';
const DEV_PASSWORD = 'docker-e2e-dev-password';
const DEBIAN_CLI = '/usr/bin/docker';

const suite = await dockerEngineForSuite('docker client e2e');

describe('docker login, push, pull and manifest against token auth', { skip: suite.skip }, () => {
  const engine = suite.engine as DockerEngine;
  const docker = (...args: string[]) => engine.docker(args);
  let server: ServerProcess;
  let robotSecret: string;
  let registry: string;
  let appDigest: string;

  before(async () => {
    server = await startServer({
      env: { REGISTRY_AUTH: 'token', REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD, REGISTRY_AUTH_PUBLIC_REPOSITORIES: 'public/**' },
    });
    registry = server.host;
    await api('POST', '/api/v1/users', { name: 'dev', password: DEV_PASSWORD, grants: [{ pattern: 'team/**', actions: ['pull', 'push'] }, { pattern: 'public/**', actions: ['pull', 'push'] }] });
    const robot = (await api('POST', '/api/v1/robots', { name: 'ci', grants: [{ pattern: 'ci/**', actions: ['pull', 'push'] }] })) as { secret: string };
    robotSecret = robot.secret;
  });

  after(async () => {
    await server?.stop();
    await engine.stop();
  });

  const api = (method: string, route: string, body: unknown) => adminApi(server, ADMIN_PASSWORD)(method, route, body);

  const refused = (attempt: Promise<unknown>, pattern: RegExp) =>
    assert.rejects(attempt, (error: unknown) => {
      assert.ok(error instanceof CommandError, String(error));
      assert.match(error.stderr + error.stdout, pattern);
      return true;
    });

  /** What `docker login` left in the client's config for this registry. */
  async function storedCredentials(): Promise<{ auth?: string; identitytoken?: string } | undefined> {
    const config = JSON.parse(await fs.readFile(path.join(engine.configDir, 'config.json'), 'utf8')) as { auths?: Record<string, { auth?: string; identitytoken?: string }> };
    return config.auths?.[registry];
  }

  it('refuses docker login with a wrong password, saying so', async () => {
    await refused(dockerLogin(engine, registry, 'dev', 'not-the-password'), /unauthorized: invalid username, password or token/);
  });

  it('a user logs in; docker keeps the registry refresh token, not the password', async () => {
    const login = await dockerLogin(engine, registry, 'dev', DEV_PASSWORD);
    assert.match(login.stdout, /Login Succeeded/);
    const stored = await storedCredentials();
    assert.ok(stored?.identitytoken, 'an identity (refresh) token is stored');
    assert.equal(Buffer.from(stored.auth ?? '', 'base64').toString(), 'dev:', 'no password is stored');
  });

  it('pushes an image with a HEALTHCHECK, pulls it back by tag and digest, and runs it healthy', async () => {
    const tag = `${registry}/team/app:1.0.0`;
    await buildServiceImage(engine, tag, { release: '1.0.0' });
    appDigest = await pushImage(engine, tag);
    await docker('rmi', tag);
    const pulled = await docker('pull', tag);
    assert.match(pulled.stdout, new RegExp(`Digest: ${appDigest}`));
    assert.ok((await repoDigests(engine, tag)).includes(`${registry}/team/app@${appDigest}`));
    await docker('rmi', tag);
    await docker('pull', `${registry}/team/app@${appDigest}`);

    await docker('run', '-d', '--name', 'app', '--network=none', `${registry}/team/app@${appDigest}`);
    await waitForHealthy(engine, 'app', 30_000);
    assert.deepEqual(await containerImageDigests(engine, 'app'), [`${registry}/team/app@${appDigest}`]);
    assert.equal((await docker('exec', 'app', 'cat', '/www/release.txt')).stdout.trim(), '1.0.0');
    await docker('rm', '-f', 'app');
  });

  it('reports a container whose HEALTHCHECK fails as unhealthy', async () => {
    const tag = `${registry}/team/broken:1.0.0`;
    await buildServiceImage(engine, tag, { release: '1.0.0', unhealthy: true });
    await docker('run', '-d', '--name', 'broken', '--network=none', tag);
    await assert.rejects(waitForHealthy(engine, 'broken', 30_000), /container broken is unhealthy[\s\S]*health probes[\s\S]*exit 1/);
    await docker('rm', '-f', 'broken');
  });

  it('a robot logs in and pushes within its grants only', async () => {
    await docker('logout', registry);
    assert.equal(await storedCredentials(), undefined, 'logout forgets the credentials');
    assert.match((await dockerLogin(engine, registry, 'robot+ci', robotSecret)).stdout, /Login Succeeded/);
    const tag = `${registry}/ci/app:1.0.0`;
    await docker('tag', `${registry}/team/app@${appDigest}`, tag);
    assert.equal(await pushImage(engine, tag), appDigest, 'the same image has the same digest in another repository');
    await docker('tag', tag, `${registry}/team/robot-was-here:1`);
    await refused(docker('push', `${registry}/team/robot-was-here:1`), /denied: requested access to the resource is denied/);
    await refused(docker('pull', `${registry}/team/app:1.0.0`), /pull access denied for [^ ]+team\/app.*denied/);
  });

  it('anyone pulls a public repository without logging in; pushing it needs credentials', async () => {
    await dockerLogin(engine, registry, 'dev', DEV_PASSWORD);
    const tag = `${registry}/public/tool:1`;
    await buildScratchImage(engine, tag, { lines: ['CMD ["echo", "public tool"]'] });
    await pushImage(engine, tag);
    await docker('logout', registry);
    await docker('rmi', tag);
    await docker('pull', tag);
    assert.equal((await docker('run', '--rm', '--network=none', tag)).stdout.trim(), 'public tool');
    await refused(docker('push', tag), /denied: requested access to the resource is denied|unauthorized/);
  });

  it('docker manifest creates and pushes a multi-platform list; each platform pulls its own image', async () => {
    await dockerLogin(engine, registry, 'dev', DEV_PASSWORD);
    const repo = `${registry}/team/multi`;
    await buildScratchImage(engine, `${repo}:amd64`, { lines: ['CMD ["echo", "amd64 image"]'] });
    // No RUN: an arm64 image cannot run a step on this machine; it holds one file.
    await buildScratchImage(engine, `${repo}:arm64`, { busybox: false, platform: 'linux/arm64', files: { 'arch.txt': 'arm64\n' }, lines: ['COPY arch.txt /arch.txt'] });
    const amd64 = await pushImage(engine, `${repo}:amd64`);
    const arm64 = await pushImage(engine, `${repo}:arm64`);
    await docker('manifest', 'create', '--insecure', `${repo}:1`, `${repo}:amd64`, `${repo}:arm64`);
    const listDigest = /sha256:[0-9a-f]{64}/.exec((await docker('manifest', 'push', '--insecure', `${repo}:1`)).stdout)?.[0];
    assert.ok(listDigest, 'docker manifest push prints the list digest');

    // What the registry stores and serves: the list, as docker made it.
    const list = JSON.parse((await docker('manifest', 'inspect', '--insecure', `${repo}:1`)).stdout) as {
      mediaType: string;
      manifests: Array<{ digest: string; platform: { architecture: string; os: string } }>;
    };
    assert.equal(list.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
    assert.deepEqual(
      list.manifests.map((entry) => [entry.platform.os, entry.platform.architecture, entry.digest]),
      [['linux', 'amd64', amd64], ['linux', 'arm64', arm64]],
    );

    await docker('rmi', `${repo}:amd64`, `${repo}:arm64`);
    await docker('pull', '--platform', 'linux/arm64', `${repo}:1`);
    assert.equal((await docker('image', 'inspect', '--format', '{{.Architecture}}', `${repo}:1`)).stdout.trim(), 'arm64');
    await docker('rmi', `${repo}:1`);
    const pulled = await docker('pull', `${repo}:1`);
    assert.match(pulled.stdout, new RegExp(`Digest: ${listDigest}`));
    assert.equal((await docker('run', '--rm', '--network=none', `${repo}:1`)).stdout.trim(), 'amd64 image');
  });

  it("Debian's docker.io client logs in, pulls and reads the list too", async (t) => {
    if (!existsSync(DEBIAN_CLI)) return t.skip(`${DEBIAN_CLI} (docker.io) not installed`);
    const cli = { cli: DEBIAN_CLI };
    const [onPath, debian] = await Promise.all([docker('version', '--format', '{{.Client.Version}}'), engine.docker(['version', '--format', '{{.Client.Version}}'], cli)]);
    if (onPath.stdout.trim() === debian.stdout.trim()) return t.skip(`the docker on PATH is ${DEBIAN_CLI}'s version already`);
    await engine.docker(['logout', registry], cli);
    await engine.docker(['login', '--username', 'robot+ci', '--password-stdin', registry], { ...cli, input: robotSecret });
    await engine.docker(['rmi', '-f', `${registry}/ci/app:1.0.0`], cli);
    assert.match((await engine.docker(['pull', `${registry}/ci/app:1.0.0`], cli)).stdout, new RegExp(`Digest: ${appDigest}`));
    await engine.docker(['login', '--username', 'dev', '--password-stdin', registry], { ...cli, input: DEV_PASSWORD });
    const list = JSON.parse((await engine.docker(['manifest', 'inspect', '--insecure', `${registry}/team/multi:1`], cli)).stdout) as { manifests: unknown[] };
    assert.equal(list.manifests.length, 2);
  });
});
