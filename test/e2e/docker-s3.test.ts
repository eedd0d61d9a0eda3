/**
 * The Docker engine against the registry process with its blobs on S3 (a real radosgw) and
 * token auth: `docker login`, `docker push` of an image built FROM scratch with busybox,
 * `docker pull` back and run, once with pulls streamed through the registry and once with
 * pulls redirected to the object store, where the engine follows the 307 to radosgw on
 * loopback. One engine and one radosgw for the file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { buildScratchImage, dockerEngineForSuite, dockerLogin, pushImage, type DockerEngine } from '../helpers/docker.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

const ADMIN_PASSWORD = 'docker-s3-e2e-admin-password';
const MiB = 1024 * 1024;

const suite = radosgwMissing ? { engine: undefined, skip: radosgwMissing } : await dockerEngineForSuite('docker on S3 e2e');
if (radosgwMissing) console.log(`docker on S3 e2e skipped: ${radosgwMissing}`);

describe('docker login, push and pull with the blobs on S3', { skip: suite.skip }, () => {
  const engine = suite.engine as DockerEngine;
  const docker = (...args: string[]) => engine.docker(args);
  let s3: S3Server;
  const servers: ServerProcess[] = [];

  before(async () => {
    s3 = await startRadosgw();
  });
  after(async () => {
    for (const server of servers) await server.stop();
    await engine.stop();
    await s3?.stop();
  });

  for (const redirect of [false, true]) {
    it(`pushes, pulls and runs an image with redirects ${redirect ? 'on: the engine fetches blobs from radosgw' : 'off: blobs stream through the registry'}`, async () => {
      const server = await startServer({
        env: {
          ...s3.env(await s3.createBucket()),
          REGISTRY_AUTH: 'token',
          REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD,
          REGISTRY_STORAGE_REDIRECT_ENABLED: String(redirect),
        },
      });
      servers.push(server);
      const tag = `${server.host}/team/app:1`;
      const greeting = `hello from S3, redirects ${redirect ? 'on' : 'off'}`;
      // Beside busybox (a layer just under 1 MiB), a layer of 3 MiB: large enough for the copy through reused buffers.
      const data = randomBytes(3 * MiB);
      await buildScratchImage(engine, tag, {
        files: { 'data.bin': data },
        lines: ['COPY data.bin /data.bin', `CMD ["sh", "-c", ${JSON.stringify(`echo '${greeting}'; sha256sum /data.bin`)}]`],
      });
      assert.match((await dockerLogin(engine, server.host, 'admin', ADMIN_PASSWORD)).stdout, /Login Succeeded/);
      const digest = await pushImage(engine, tag);

      // The image's only tag goes, and its layers with it: the pull must fetch every blob.
      await docker('rmi', tag);
      const pulled = await docker('pull', tag);
      assert.match(pulled.stdout, new RegExp(`Digest: ${digest}`));
      assert.match(pulled.stdout, /Pull complete/);
      const output = (await docker('run', '--rm', '--network=none', tag)).stdout.trim().split('\n');
      assert.deepEqual(output, [greeting, `${createHash('sha256').update(data).digest('hex')}  /data.bin`]);

      const metrics = await server.metrics();
      if (redirect) {
        assert.equal(metrics.registry_served_bytes_total, 0, 'no blob byte went through the registry');
        assert.ok(metrics.registry_redirected_pulls_total! >= 3, 'the config and the layers were redirected');
      } else {
        assert.ok(metrics.registry_served_bytes_total! > 4 * MiB, 'the blobs went through the registry');
        assert.equal(metrics.registry_redirected_pulls_total, 0);
      }
      await docker('rmi', tag);
      await docker('logout', server.host);
    });
  }
});
