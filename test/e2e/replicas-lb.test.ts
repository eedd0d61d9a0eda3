/**
 * Three registry processes behind a real nginx (scripts/nginx.sh: round robin, bodies streamed
 * both ways), sharing nothing but one PostgreSQL database and one radosgw bucket, with token
 * auth (the signing key the database holds). Every storage root is a replica's own. skopeo and
 * docker push and pull through nginx, each request free to land on another replica; a token
 * from one replica works on the others; a webhook subscription gets every tag event once, in
 * order per repository; a collection on one replica while pushes go through nginx deletes
 * nothing an acknowledged image needs; a replica SIGKILLed in the middle of pushes loses no
 * acknowledged push, and the pushes it broke succeed when retried.
 *
 * One set-up for the file (PostgreSQL, radosgw and dockerd start in parallel); the cases run in
 * order, the SIGKILL last. The replicas trust nginx's X-Forwarded-* (http.trustProxy loopback)
 * and have no http.publicUrl: token realms and webhook events name the host clients used.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildScratchImage, dockerLogin, dockerUnavailable, pushImage, startDockerEngine, staticBusyboxUnavailable, type DockerEngine } from '../helpers/docker.js';
import { freshPostgresDatabase, postgresServer } from '../helpers/metadata-backends.js';
import { nginxUnavailable, startLoadBalancer, type LoadBalancer } from '../helpers/nginx.js';
import { buildOciImage, seededBytes, type BuiltImage } from '../helpers/oci-layout.js';
import { postgresUnavailable } from '../helpers/postgres.js';
import { pushImageDirectly, requestsPerServer, settleEach, tokenIssuer, verifyImage } from '../helpers/registry-client.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { skopeoRunner, type Skopeo } from '../helpers/skopeo.js';
import { hasCommand } from '../helpers/tools.js';
import { startListener, waitFor, type Listener } from '../webhooks/support.js';

const ADMIN_PASSWORD = 'replicas-lb-admin-password-3';
const REPLICAS = 3;
const KiB = 1024;
const MiB = 1024 * KiB;

const missing = nginxUnavailable() ?? postgresUnavailable() ?? radosgwMissing ?? (hasCommand('skopeo') ? null : 'skopeo is not installed');
if (missing) console.log(`# replicas behind nginx e2e skipped: ${missing}`);
const dockerMissing = missing ? null : (dockerUnavailable() ?? staticBusyboxUnavailable());
if (dockerMissing) console.log(`# replicas behind nginx e2e: the docker case is skipped: ${dockerMissing}`);

describe('three replicas behind nginx on PostgreSQL and radosgw', { skip: missing ?? false }, () => {
  const replicas: ServerProcess[] = [];
  let lb: LoadBalancer;
  let s3: S3Server;
  let engine: DockerEngine | undefined;
  let dockerStarting: Promise<DockerEngine | undefined> | undefined;
  let dockerFailure: string | undefined;
  let work: string;
  let skopeo: Skopeo;
  let databaseUrl: string;
  let replicaEnv: Record<string, string>;
  const creds = `admin:${ADMIN_PASSWORD}`;
  const basic = `Basic ${Buffer.from(creds).toString('base64')}`;
  const token = tokenIssuer('admin', ADMIN_PASSWORD);
  const images = new Map<string, BuiltImage>();
  const started = Date.now();

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'replicas-lb-'));
    // dockerd starts while the rest comes up; the docker case awaits it.
    dockerStarting = dockerMissing
      ? Promise.resolve(undefined)
      : startDockerEngine().catch((error: Error) => {
          if (process.env.CI) throw error;
          dockerFailure = `dockerd could not start: ${error.message}`;
          return undefined;
        });
    [s3, databaseUrl, skopeo] = await Promise.all([startRadosgw(), freshPostgresDatabase(), skopeoRunner(path.join(work, 'skopeo'))]);
    replicaEnv = {
      ...s3.env(await s3.createBucket()),
      REGISTRY_AUTH: 'token',
      REGISTRY_ADMIN_PASSWORD: ADMIN_PASSWORD,
      REGISTRY_METADATA_DRIVER: 'postgres',
      REGISTRY_METADATA_POSTGRES_URL: databaseUrl,
      REGISTRY_HTTP_TRUST_PROXY: 'loopback',
      REGISTRY_STORAGE_S3_PART_SIZE: '5MiB',
      REGISTRY_WEBHOOKS_INITIAL_BACKOFF_MS: '100',
      REGISTRY_WEBHOOKS_MAX_BACKOFF_MS: '400',
    };
    // Started together: they migrate the empty database at the same moment.
    replicas.push(...(await Promise.all(Array.from({ length: REPLICAS }, () => startServer({ env: replicaEnv, startTimeoutMs: 40_000 })))));
    lb = await startLoadBalancer(replicas.map((replica) => replica.host));
    engine = await dockerStarting;
    console.log(`# set-up: ${Date.now() - started} ms`);
  });
  after(async () => {
    await Promise.all(replicas.map((replica) => replica.stop()));
    await lb?.stop();
    await (engine ?? (await dockerStarting?.catch(() => undefined)))?.stop();
    await s3?.stop();
    if (work) await fs.rm(work, { recursive: true, force: true });
    console.log(`# whole file: ${Date.now() - started} ms`);
  });

  /** An image of its own (one layer of `size` seeded bytes, plus `shared` layers first). */
  async function image(seed: string, size = 64 * KiB, shared: Array<{ file: string; content: Buffer }> = []): Promise<BuiltImage> {
    const built = await buildOciImage(path.join(work, `image-${seed}`), [...shared, { file: `${seed}.bin`, content: seededBytes(seed, size) }]);
    images.set(seed, built);
    return built;
  }
  const push = (built: BuiltImage, target: string) =>
    skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds, `oci:${built.dir}:latest`, `docker://${lb.host}/${target}`);
  const verifyThroughLb = async (repository: string, reference: string, built: BuiltImage) =>
    verifyImage(lb.url, await token(lb.url, `repository:${repository}:pull`), repository, reference, built);
  const servingReplicas = (repository: string) => requestsPerServer(replicas, repository).filter((count) => count > 0).length;

  it('skopeo pushes and pulls through nginx, the requests of one push spread over the replicas', async () => {
    const built = await image('skopeo', 256 * KiB);
    await push(built, 'team/skopeo:v1');
    const perReplica = requestsPerServer(replicas, 'team/skopeo');
    assert.ok(perReplica.filter((count) => count > 0).length > 1, `one push, served by: ${perReplica.join(', ')} requests per replica`);

    const out = path.join(work, 'pulled-skopeo');
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${lb.host}/team/skopeo:v1`, `oci:${out}:pulled`);
    const index = JSON.parse(await fs.readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]?.digest, built.manifestDigest);
    for (const layer of built.layerDigests) await fs.access(path.join(out, 'blobs', 'sha256', layer.slice('sha256:'.length)));
    assert.ok(servingReplicas('team/skopeo') === REPLICAS, 'push and pull together reached every replica');
  });

  it('a token issued by one replica works on the others', async () => {
    for (const [i, issuer] of replicas.entries()) {
      const issued = await token(issuer.url, 'repository:team/skopeo:pull');
      for (const [j, other] of replicas.entries()) {
        if (i === j) continue;
        const listed = await fetch(`${other.url}/v2/team/skopeo/tags/list`, { headers: { Authorization: `Bearer ${issued}` } });
        assert.equal(listed.status, 200, `token of replica ${i} on replica ${j}: ${await listed.clone().text()}`);
        assert.deepEqual(((await listed.json()) as { tags: string[] }).tags, ['v1']);
      }
    }
    // The realm a replica announces behind nginx is nginx's (X-Forwarded-Host from a trusted proxy).
    const challenge = await fetch(`${lb.url}/v2/`);
    assert.equal(challenge.status, 401);
    assert.match(challenge.headers.get('www-authenticate') ?? '', new RegExp(`realm="http://${lb.host}/auth/token"`));
  });

  it('a chunked upload continues on whichever replica each chunk reaches', async () => {
    // Chunks across the S3 part size (5 MiB here): parts and tail objects written by one replica, continued by another.
    const repository = 'team/chunked';
    const bearer = `Bearer ${await token(lb.url, `repository:${repository}:pull,push`)}`;
    const content = randomBytes(6 * MiB);
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    const started = await fetch(`${lb.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: { Authorization: bearer } });
    assert.equal(started.status, 202, await started.clone().text());
    let location = new URL(started.headers.get('location')!, lb.url);
    const chunk = 2 * MiB;
    for (let offset = 0; offset < content.length; offset += chunk) {
      const status = await fetch(location, { headers: { Authorization: bearer } });
      assert.equal(status.status, 204);
      // (`0-0` for an empty upload, as CNCF distribution answers.)
      assert.equal(status.headers.get('range'), `0-${Math.max(0, offset - 1)}`, 'the upload status another replica reports');
      const patched = await fetch(location, {
        method: 'PATCH',
        headers: { Authorization: bearer, 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk - 1}` },
        body: content.subarray(offset, offset + chunk),
      });
      assert.equal(patched.status, 202, await patched.clone().text());
      location = new URL(patched.headers.get('location')!, lb.url);
    }
    location.searchParams.set('digest', digest);
    const completed = await fetch(location, { method: 'PUT', headers: { Authorization: bearer } });
    assert.equal(completed.status, 201, await completed.clone().text());
    const patches = requestsPerServer(replicas, repository, ['PATCH']);
    assert.ok(patches.filter((count) => count > 0).length > 1, `the chunks were served by: ${patches.join(', ')}`);
    const blob = await fetch(`${lb.url}/v2/${repository}/blobs/${digest}`, { headers: { Authorization: bearer } });
    assert.equal(blob.status, 200);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(content), 'the blob reads back as uploaded');
  });

  it('docker pushes and pulls through nginx', async (t) => {
    if (!engine) return t.skip(dockerMissing ?? dockerFailure);
    const tag = `${lb.host}/team/docker:1`;
    const data = randomBytes(1 * MiB);
    await buildScratchImage(engine, tag, { files: { 'data.bin': data }, lines: ['COPY data.bin /data.bin', 'CMD ["sha256sum", "/data.bin"]'] });
    assert.match((await dockerLogin(engine, lb.host, 'admin', ADMIN_PASSWORD)).stdout, /Login Succeeded/);
    const digest = await pushImage(engine, tag);
    const perReplica = requestsPerServer(replicas, 'team/docker');
    assert.ok(perReplica.filter((count) => count > 0).length > 1, `one docker push, served by: ${perReplica.join(', ')} requests per replica`);
    await engine.docker(['rmi', tag]);
    const pulled = await engine.docker(['pull', tag]);
    assert.match(pulled.stdout, new RegExp(`Digest: ${digest}`));
    const output = (await engine.docker(['run', '--rm', '--network=none', tag])).stdout.trim();
    assert.equal(output, `${createHash('sha256').update(data).digest('hex')}  /data.bin`);
  });

  it('a webhook subscription gets every tag event once, in order per repository, whichever replica took the push', async () => {
    const listener = await startListener();
    try {
      const created = await fetch(`${lb.url}/api/v1/webhooks`, {
        method: 'POST',
        headers: { Authorization: basic, 'Content-Type': 'application/json' },
        body: JSON.stringify({ url: `${listener.url}/hook`, events: ['tag.created', 'tag.updated'], repositories: ['hooks/**'] }),
      });
      assert.equal(created.status, 201, await created.clone().text());
      // Per repository, in order: two new tags, then the first one moved to a new image.
      const steps = ['t1', 't2', 't1'];
      const expected = new Map<string, Array<{ type: string; tag: string; digest: string }>>();
      const repositories = ['hooks/a', 'hooks/b', 'hooks/c'];
      await Promise.all(
        repositories.map(async (repository) => {
          const sequence: Array<{ type: string; tag: string; digest: string }> = [];
          expected.set(repository, sequence);
          for (const [n, tag] of steps.entries()) {
            const built = await image(`${repository.replace('/', '-')}-${n}`, 16 * KiB);
            await push(built, `${repository}:${tag}`);
            sequence.push({ type: n === 2 ? 'tag.updated' : 'tag.created', tag, digest: built.manifestDigest });
          }
        }),
      );
      for (const repository of repositories) assert.ok(servingReplicas(repository) > 1, `${repository} was pushed through one replica only`);
      const total = repositories.length * steps.length;
      await waitFor(() => listener.received.length >= total, `${total} tag events`, 20_000);
      // Every replica dispatches: give a second sender time to show itself.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const events = listener.received.map((r) => r.json as { id: string; type: string; repository: string; tag: string; digest: string; registry: string });
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'an event was delivered twice');
      assert.equal(events.length, total);
      for (const repository of repositories) {
        const got = events.filter((e) => e.repository === repository).map(({ type, tag, digest }) => ({ type, tag, digest }));
        assert.deepEqual(got, expected.get(repository), `events of ${repository}, in order`);
      }
      assert.ok(events.every((e) => e.registry === lb.host), 'events name the host clients pushed to (forwarded by nginx)');
    } finally {
      await listener.close();
    }
  });

  it('a collection on one replica while pushes go through nginx deletes nothing an acknowledged image needs', async () => {
    // Garbage: images whose manifests are deleted at once. Three of them are pushed again below
    // (their layers linked by HEAD, not uploaded) while replica 0 collects: a claim against a
    // mark, in two processes. The first is never pushed again: the collection must take it.
    const old = await Promise.all(Array.from({ length: 4 }, (_, i) => image(`gc-old-${i}`, 64 * KiB)));
    const writer = await token(lb.url, 'repository:gc/old:pull,push,delete');
    for (const [i, built] of old.entries()) {
      await pushImageDirectly(lb.url, writer, 'gc/old', `v${i}`, built);
      const deleted = await fetch(`${lb.url}/v2/gc/old/manifests/${built.manifestDigest}`, { method: 'DELETE', headers: { Authorization: `Bearer ${writer}` } });
      assert.equal(deleted.status, 202, await deleted.clone().text());
    }
    const garbageMadeAt = Date.now();
    const fresh = await Promise.all(Array.from({ length: 4 }, (_, i) => image(`gc-fresh-${i}`, 64 * KiB)));
    const pushes = [...old.slice(1).map((built, i) => ({ built, repository: `gc/again-${i}` })), ...fresh.map((built, i) => ({ built, repository: `gc/fresh-${i}` }))];

    const collector = replicas[0]!;
    const collected = new Set<string>();
    let collections = 0;
    let pushing = true;
    // The collections run with a grace period of one second: start when the garbage qualifies.
    await sleep(Math.max(0, garbageMadeAt + 1_100 - Date.now()));
    const garbageLayer = old[0]!.layerDigests[0]!;
    const collecting = (async () => {
      for (let run = 0; run < 300 && (pushing || !collected.has(garbageLayer)); run++) {
        const response = await fetch(`${collector.url}/api/v1/gc`, {
          method: 'POST',
          headers: { Authorization: basic, 'Content-Type': 'application/json' },
          body: JSON.stringify({ gracePeriodSeconds: 1 }),
          signal: AbortSignal.timeout(30_000),
        });
        if (response.status === 409) continue; // another replica's scheduled collection holds the lease
        assert.equal(response.status, 200, await response.clone().text());
        const report = (await response.json()) as { blobsDeleted: { items: Array<{ digest: string }> } };
        for (const item of report.blobsDeleted.items) collected.add(item.digest);
        collections++;
      }
    })();
    let refused = 0;
    const results = await settleEach(pushes, 2, async ({ built, repository }) => {
      // A push whose blobs the collection took first is refused cleanly; the client pushes again.
      for (let attempt = 1; ; attempt++) {
        try {
          return await push(built, `${repository}:1`);
        } catch (error) {
          assert.match(String(error), /blob unknown/i, 'refused for another reason than a collected blob');
          if (attempt === 3) throw error;
          refused++;
        }
      }
    }).finally(() => (pushing = false));
    await collecting;
    const uploadedAgain = old.slice(1).filter((built) => built.layerDigests.some((layer) => collected.has(layer))).length;
    console.log(
      `# gc during pushes: ${collections} collections, ${pushes.length} pushes, ${refused} refused and pushed again, ` +
        `${uploadedAgain} of ${old.length - 1} pushes of garbage came after the collection took its layers (and uploaded them again)`,
    );
    for (const result of results) if (result.status === 'rejected') throw result.reason;
    for (const { built, repository } of pushes) await verifyThroughLb(repository, '1', built);
    assert.ok(collected.has(garbageLayer), 'the collection took the garbage nobody pushed again');
  });

  it('SIGKILL of one replica in the middle of pushes loses no acknowledged push, and a retried push succeeds', async () => {
    const pushes = await Promise.all(Array.from({ length: 5 }, (_, i) => image(`kill-${i}`, 1 * MiB)));
    // One upload held open in the middle of its body: whichever replica streams it is the one killed.
    const held = await holdUpload('crash/held');
    const victim = replicas.find((replica) => replica.child.pid === held.writerPid);
    assert.ok(victim, `the upload's writer (pid ${held.writerPid}) is one of the replicas`);

    let firstAcknowledged: () => void = () => undefined;
    const oneAcknowledged = new Promise<void>((resolve) => (firstAcknowledged = resolve));
    const background = settleEach(pushes, 3, async (built, i) => {
      await push(built, `crash/app-${i}:1`);
      firstAcknowledged();
    });
    await Promise.race([oneAcknowledged, background]);
    await victim.kill();
    held.finish();
    const heldOutcome = await held.outcome;
    console.log(`# the upload held open on the killed replica ended with ${heldOutcome || 'a broken connection'}`);
    assert.ok(heldOutcome !== 202, `the upload on the killed replica was acknowledged (${heldOutcome})`);
    const results = await background;

    const acknowledged = results.flatMap((result, i) => (result.status === 'fulfilled' ? [i] : []));
    const failed = results.flatMap((result, i) => (result.status === 'rejected' ? [i] : []));
    console.log(`# SIGKILL during pushes: ${acknowledged.length} acknowledged, ${failed.length} failed (+ the held upload)`);
    for (const i of failed) console.log(`#   ${/msg="([^"]*)"/.exec(String((results[i] as PromiseRejectedResult).reason))?.[1] ?? 'skopeo failed'}`);
    assert.ok(acknowledged.length >= 1);
    for (const i of acknowledged) await verifyThroughLb(`crash/app-${i}`, '1', pushes[i]!);
    // What failed is pushed again, through nginx, to the replicas left.
    for (const i of failed) {
      await push(pushes[i]!, `crash/app-${i}:1`);
      await verifyThroughLb(`crash/app-${i}`, '1', pushes[i]!);
    }
    const retried = await image('crash-held', 512 * KiB);
    await push(retried, 'crash/held:1');
    await verifyThroughLb('crash/held', '1', retried);
    // Requests that picked the dead replica after the kill went on to a live one.
    const passedOn = (await lb.accessLog()).split('\n').filter((line) => line.includes(`upstream=${victim.host}, `));
    assert.ok(passedOn.length > 0, `nginx never passed a request from the dead replica to the next:\n${await lb.accessLog()}`);
  });

  /**
   * Starts a blob upload through nginx and streams half of its body, then holds it: resolves
   * once a replica has taken the upload's writer lease (its pid is in the lease's name), with
   * the final status of the PATCH to come (or 0 if the connection broke).
   */
  async function holdUpload(repository: string): Promise<{ writerPid: number; finish(): void; outcome: Promise<number> }> {
    const bearer = `Bearer ${await token(lb.url, `repository:${repository}:pull,push`)}`;
    const started = await fetch(`${lb.url}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: { Authorization: bearer } });
    assert.equal(started.status, 202, await started.clone().text());
    const location = started.headers.get('location')!;
    const id = /\/blobs\/uploads\/([0-9a-f-]{36})/.exec(location)?.[1];
    assert.ok(id, `upload location ${location}`);
    let feed!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (controller) => void (feed = controller) });
    feed.enqueue(seededBytes('held', 1 * MiB));
    const outcome = fetch(new URL(location, lb.url), {
      method: 'PATCH',
      headers: { Authorization: bearer, 'Content-Type': 'application/octet-stream' },
      body,
      duplex: 'half',
      signal: AbortSignal.timeout(30_000),
    } as RequestInit).then(
      (response) => response.status,
      () => 0,
    );
    const pg = await postgresServer();
    const writer = await waitFor(async () => (await pg.psql(`SELECT writer FROM uploads WHERE id = '${id}'`, databaseUrl)).trim(), 'the writer lease of the held upload');
    const writerPid = Number(writer.split('/')[1]);
    const finish = () => {
      try {
        feed.close();
      } catch {
        // already closed: the request broke
      }
    };
    return { writerPid, finish, outcome: outcome.finally(finish) };
  }
});
