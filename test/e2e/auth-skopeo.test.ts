/**
 * End-to-end with token auth on: the real registry process, skopeo pushing and pulling with
 * `--creds` (admin, a pull-only user, a robot limited to ci/*, anonymous pulls of public
 * repositories), and podman after `podman login` where podman runs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { adminApi } from '../helpers/admin-api.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { CommandError, hasCommand, run, type RunResult } from '../helpers/tools.js';
import { skopeoRunner } from '../helpers/skopeo.js';

const ADMIN_PASSWORD = 'e2e-admin-password-42';
const hasSkopeo = hasCommand('skopeo');
if (!hasSkopeo) console.log('auth e2e skipped: skopeo not installed');

describe('token auth with skopeo and podman against the registry process', { skip: hasSkopeo ? false : 'skopeo not installed' }, () => {
  let server: ServerProcess;
  let work: string;
  let image: BuiltImage;
  let skopeo: (...args: string[]) => Promise<RunResult>;
  let robotSecret: string;

  before(async () => {
    // Lowercase only: podman names an image pulled from an OCI layout after its path.
    work = path.join(os.tmpdir(), `auth-e2e-${randomBytes(6).toString('hex')}`);
    await fs.mkdir(work, { mode: 0o700 });
    server = await startServer({ env: { REGISTRY_AUTH: 'token', REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD, REGISTRY_AUTH_PUBLIC_REPOSITORIES: 'public/**' } });
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    image = await buildOciImage(path.join(work, 'image'), [
      { file: 'a.bin', content: seededBytes('auth-e2e-a', 120 * 1024) },
      { file: 'b.bin', content: seededBytes('auth-e2e-b', 80 * 1024) },
    ]);
    // Accounts through the admin API.
    await api('POST', '/api/v1/users', { name: 'reader', password: 'reader-password-1', grants: [{ pattern: 'team/*', actions: 'pull' }] });
    const robot = (await api('POST', '/api/v1/robots', { name: 'ci', grants: [{ pattern: 'ci/*', actions: ['pull', 'push'] }] })) as { secret: string };
    robotSecret = robot.secret;
  });

  after(async () => {
    await server?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const api = (method: string, route: string, body: unknown) => adminApi(server, ADMIN_PASSWORD)(method, route, body);

  const ref = (target: string) => `docker://${server.host}/${target}`;
  const push = (target: string, creds: string | null) =>
    skopeo('copy', '--dest-tls-verify=false', ...(creds ? ['--dest-creds', creds] : ['--dest-no-creds']), `oci:${image.dir}:latest`, ref(target));
  const pull = (source: string, creds: string | null, out: string) =>
    skopeo('copy', '--src-tls-verify=false', ...(creds ? ['--src-creds', creds] : ['--src-no-creds']), ref(source), `oci:${out}:pulled`);
  const inspectDigest = async (target: string, creds: string | null) => {
    const result = await skopeo('inspect', '--tls-verify=false', ...(creds ? ['--creds', creds] : ['--no-creds']), ref(target));
    return (JSON.parse(result.stdout) as { Digest: string }).Digest;
  };
  const refused = async (attempt: Promise<unknown>, pattern: RegExp) => {
    await assert.rejects(attempt, (error: unknown) => {
      assert.ok(error instanceof CommandError, String(error));
      assert.match(error.stderr, pattern);
      return true;
    });
  };

  it('pushes and pulls with the admin credentials', async () => {
    await push('team/app:v1', `admin:${ADMIN_PASSWORD}`);
    await push('public/base:v1', `admin:${ADMIN_PASSWORD}`);
    assert.equal(await inspectDigest('team/app:v1', `admin:${ADMIN_PASSWORD}`), image.manifestDigest);
    const out = path.join(work, 'pulled-admin');
    await pull('team/app:v1', `admin:${ADMIN_PASSWORD}`, out);
    const index = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, image.manifestDigest);
  });

  it('refuses pushes and pulls without credentials or with a wrong password', async () => {
    await refused(push('team/other:v1', null), /unauthorized|authentication required|denied/i);
    await refused(push('team/other:v1', 'admin:wrong-password'), /unauthorized|authentication required|invalid username/i);
    await refused(pull('team/app:v1', null, path.join(work, 'anon-private')), /unauthorized|authentication required|denied/i);
  });

  it('a pull-only user pulls but cannot push', async () => {
    assert.equal(await inspectDigest('team/app:v1', 'reader:reader-password-1'), image.manifestDigest);
    await pull('team/app:v1', 'reader:reader-password-1', path.join(work, 'pulled-reader'));
    await refused(push('team/app:v2', 'reader:reader-password-1'), /unauthorized|authentication required|denied/i);
  });

  it('a robot limited to ci/* pushes ci/app and cannot touch prod/app', async () => {
    const creds = `robot+ci:${robotSecret}`;
    await push('ci/app:v1', creds);
    assert.equal(await inspectDigest('ci/app:v1', creds), image.manifestDigest);
    await refused(push('prod/app:v1', creds), /unauthorized|authentication required|denied/i);
    await refused(inspectDigest('team/app:v1', creds), /unauthorized|authentication required|denied/i);
  });

  it('anyone pulls a public repository without credentials', async () => {
    assert.equal(await inspectDigest('public/base:v1', null), image.manifestDigest);
    await pull('public/base:v1', null, path.join(work, 'pulled-public'));
    await refused(push('public/base:v2', null), /unauthorized|authentication required|denied/i);
  });

  it('podman pushes and pulls after podman login', async (t) => {
    const podman = await isolatedPodman(path.join(work, 'podman'));
    if (!podman) return t.skip('podman not installed or cannot run here');
    await podman('login', '--tls-verify=false', '-u', 'admin', '-p', ADMIN_PASSWORD, server.host);
    await podman('pull', `oci:${image.dir}:latest`);
    const local = (await podman('images', '--format', '{{.Repository}}:{{.Tag}}')).stdout.trim().split('\n')[0]!;
    await podman('push', '--tls-verify=false', local, `docker://${server.host}/team/podman:v1`);
    await podman('rmi', '-a');
    await podman('pull', '--tls-verify=false', `${server.host}/team/podman:v1`);
    assert.match((await podman('images', '--format', '{{.Repository}}:{{.Tag}}')).stdout, /team\/podman:v1/);
    await podman('logout', server.host);
    await assert.rejects(podman('pull', '--tls-verify=false', `${server.host}/team/podman:v1`));
  });

  it('logged audit failures but no password, secret or token', () => {
    const output = server.output();
    assert.match(output, /"audit":"authentication-failed"/);
    for (const secret of [ADMIN_PASSWORD, 'reader-password-1', robotSecret]) assert.ok(!output.includes(secret), 'a secret reached the server output');
    assert.doesNotMatch(output, /eyJ[\w-]+\.eyJ[\w-]+\./, 'no JWT in the server output');
  });
});


/** podman on private storage (vfs) and auth file; null when podman is missing or cannot run. */
async function isolatedPodman(dir: string): Promise<((...args: string[]) => Promise<RunResult>) | null> {
  if (!hasCommand('podman')) return null;
  await fs.mkdir(path.join(dir, 'run'), { recursive: true, mode: 0o700 });
  const policy = path.join(dir, 'policy.json');
  await fs.writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await fs.writeFile(path.join(dir, 'registries.conf'), '');
  const env = {
    ...process.env,
    HOME: dir,
    XDG_RUNTIME_DIR: path.join(dir, 'run'),
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    CONTAINERS_REGISTRIES_CONF: path.join(dir, 'registries.conf'),
    REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'),
    TMPDIR: dir,
  };
  const globals = ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run', 'storage'), '--storage-driver', 'vfs'];
  const podman = (...args: string[]) => {
    const [command, ...rest] = args;
    const withPolicy = command === 'pull' || command === 'push' ? ['--signature-policy', policy, ...rest] : rest;
    return run('podman', [...globals, command!, ...withPolicy], { env, timeoutMs: 120_000 });
  };
  try {
    await podman('info');
    return podman;
  } catch {
    return null;
  }
}
