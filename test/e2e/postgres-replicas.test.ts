/**
 * Two real registry processes on one PostgreSQL database (and one storage root): skopeo pushes
 * through one and pulls through the other, a token issued by one works on the other, both use
 * the signing key the database holds, and a webhook subscription made on one gets the pushes
 * made on the other, once. (The three-replica set-up behind a load balancer on S3 is the
 * second part of issue 13.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freshPostgresDatabase, POSTGRES_SKIP } from '../helpers/metadata-backends.js';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';
import { startListener, waitFor } from '../webhooks/support.js';

const ADMIN_PASSWORD = 'replicas-admin-password-7';
const skip = POSTGRES_SKIP || (hasCommand('skopeo') ? false : 'skopeo not installed');
if (skip) console.log(`# postgres replicas e2e skipped: ${skip}`);

describe('two registry processes on one PostgreSQL database', { skip }, () => {
  const servers: ServerProcess[] = [];
  let work: string;
  let image: BuiltImage;
  let skopeo: Skopeo;
  const creds = `admin:${ADMIN_PASSWORD}`;
  const basic = `Basic ${Buffer.from(creds).toString('base64')}`;

  before(async () => {
    work = path.join(os.tmpdir(), `pg-replicas-${randomBytes(6).toString('hex')}`);
    await fs.mkdir(path.join(work, 'root'), { recursive: true, mode: 0o700 });
    const env = {
      REGISTRY_AUTH: 'token',
      REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD,
      REGISTRY_METADATA_DRIVER: 'postgres',
      REGISTRY_METADATA_POSTGRES_URL: await freshPostgresDatabase(),
    };
    // Started together: they migrate the empty database at the same moment.
    servers.push(...(await Promise.all([0, 1].map(() => startServer({ env, root: path.join(work, 'root') })))));
    skopeo = await skopeoRunner(path.join(work, 'skopeo'));
    image = await buildOciImage(path.join(work, 'image'), [{ file: 'layer.bin', content: seededBytes('pg-replicas', 300 * 1024) }]);
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('pushes through one replica and pulls through the other', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${image.dir}:latest`, `docker://${a.host}/team/app:v1`);
    const inspected = await skopeo('inspect', '--tls-verify=false', '--creds', creds, `docker://${b.host}/team/app:v1`);
    assert.equal((JSON.parse(inspected.stdout) as { Digest: string }).Digest, image.manifestDigest);
    const out = path.join(work, 'pulled');
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${b.host}/team/app:v1`, `oci:${out}:pulled`);
    const index = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, image.manifestDigest);
  });

  it('a token issued by one replica works on the other', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess];
    const issued = await fetch(`${a.url}/auth/token?service=harbormaster-registry&scope=registry:catalog:*`, { headers: { Authorization: basic } });
    assert.equal(issued.status, 200);
    const { token } = (await issued.json()) as { token: string };
    const catalog = await fetch(`${b.url}/v2/_catalog`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(catalog.status, 200, await catalog.clone().text());
    assert.deepEqual(((await catalog.json()) as { repositories: string[] }).repositories, ['team/app']);
    for (const server of servers) assert.doesNotMatch(server.output(), /token-signing-key\.pem/, 'a replica used a key file of its own');
  });

  it('a subscription made on one replica gets the pushes made on the other, once each', async () => {
    const listener = await startListener();
    try {
      const created = await fetch(`${servers[0]!.url}/api/v1/webhooks`, {
        method: 'POST',
        headers: { Authorization: basic, 'Content-Type': 'application/json' },
        body: JSON.stringify({ url: `${listener.url}/hook`, events: ['tag.created'] }),
      });
      assert.equal(created.status, 201, await created.clone().text());
      await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${image.dir}:latest`, `docker://${servers[1]!.host}/team/app:v2`);
      await waitFor(() => listener.received.some((r) => r.json?.tag === 'v2'), 'the tag event of the push on the other replica');
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(listener.received.filter((r) => r.json?.tag === 'v2').length, 1, 'sent once, though both replicas dispatch');
    } finally {
      await listener.close();
    }
  });
});
