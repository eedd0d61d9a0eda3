/**
 * Graduating from one box on real servers: a single-node registry (SQLite, filesystem, token
 * auth) is filled through its HTTP API (pushes, a referrer, accounts, a robot, grants, a refresh
 * token, a webhook subscription with a delivered event), then `registry migrate-blobs --to s3`
 * copies its blobs into radosgw and `registry migrate-metadata` its database into a throwaway
 * PostgreSQL. A registry on PostgreSQL + S3 with a fresh storage root then serves the same
 * catalog, tags, manifests, blobs and referrers, lets the same accounts in (and the tokens issued
 * before), and its webhook subscription delivers the event left in the outbox and the next push,
 * each once, and none of the events delivered before the move.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import request from 'supertest';
import YAML from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { COPIED_TABLES } from '../../src/metadata/migrate/plan.js';
import { createPool, type Pool } from '../../src/metadata/postgres/pool.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { runCli } from '../helpers/cli.js';
import { postgresUnavailable, startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { radosgwMissing, startRadosgw, type S3Server } from '../helpers/s3.js';
import { FAST_WEBHOOKS, startListener, waitFor, type Listener } from '../webhooks/support.js';

const ADMIN = { username: 'admin', password: 'migrate-admin-password-1' };
const ALICE = { username: 'alice', password: 'alice-password-for-the-move' };
const SERVICE = 'harbormaster-registry';
const skip = postgresUnavailable() ?? radosgwMissing ?? false;
if (skip) console.log(`# migration e2e skipped: ${skip}`);

type App = AssembledRegistry['app'];
const basic = (c: { username: string; password: string }) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
const sha256 = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function token(app: App, scopes: string[], credentials: { username: string; password: string }, offline = false): Promise<{ token: string; refresh_token?: string }> {
  const query = new URLSearchParams({ service: SERVICE, ...(offline ? { offline_token: 'true' } : {}) });
  for (const scope of scopes) query.append('scope', scope);
  const res = await request(app).get(`/auth/token?${query}`).set('Authorization', basic(credentials));
  assert.equal(res.status, 200, `token: ${res.status} ${res.text}`);
  return res.body as { token: string; refresh_token?: string };
}

/** Pushes a small image (config + layer + manifest, optionally with a subject) as admin; returns the manifest's descriptor. */
async function pushImage(app: App, repository: string, tag: string, seed: string, subject?: { digest: string; size: number }): Promise<{ digest: string; size: number }> {
  const { token: bearer } = await token(app, [`repository:${repository}:pull,push`], ADMIN);
  const auth = `Bearer ${bearer}`;
  const descriptors = [];
  for (const [mediaType, content] of [
    ['application/vnd.oci.image.config.v1+json', JSON.stringify({ architecture: 'amd64', os: 'linux', seed })],
    ['application/vnd.oci.image.layer.v1.tar+gzip', `layer of ${seed} `.repeat(2000)],
  ] as const) {
    const res = await request(app).post(`/v2/${repository}/blobs/uploads/?digest=${sha256(content)}`).set('Authorization', auth).set('Content-Type', 'application/octet-stream').send(Buffer.from(content));
    assert.equal(res.status, 201, res.text);
    descriptors.push({ mediaType, digest: sha256(content), size: Buffer.byteLength(content) });
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    ...(subject ? { artifactType: 'application/vnd.example.sbom', subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subject } } : {}),
    config: descriptors[0],
    layers: [descriptors[1]],
  });
  const res = await request(app).put(`/v2/${repository}/manifests/${tag}`).set('Authorization', auth).set('Content-Type', 'application/vnd.oci.image.manifest.v1+json').send(manifest);
  assert.equal(res.status, 201, res.text);
  return { digest: sha256(manifest), size: Buffer.byteLength(manifest) };
}

/** What a client sees of the registry: catalog, tags, manifests, blob contents, referrers. */
async function view(app: App): Promise<Record<string, unknown>> {
  const { token: bearer } = await token(app, ['registry:catalog:*', 'repository:team/app:pull', 'repository:tools/cli:pull'], ADMIN);
  const get = (route: string) => request(app).get(route).set('Authorization', `Bearer ${bearer}`).buffer(true).parse((res, done) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => done(null, Buffer.concat(chunks)));
  });
  const catalog = JSON.parse(((await get('/v2/_catalog')).body as Buffer).toString()) as { repositories: string[] };
  const result: Record<string, unknown> = { catalog: catalog.repositories };
  for (const repository of catalog.repositories) {
    const tags = JSON.parse(((await get(`/v2/${repository}/tags/list`)).body as Buffer).toString()) as { tags: string[] };
    result[`${repository} tags`] = tags.tags;
    for (const tag of tags.tags) {
      const manifest = await get(`/v2/${repository}/manifests/${tag}`);
      assert.equal(manifest.status, 200);
      const body = manifest.body as Buffer;
      result[`${repository}:${tag}`] = sha256(body);
      const parsed = JSON.parse(body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
      for (const { digest } of [parsed.config, ...parsed.layers]) {
        const blob = await get(`/v2/${repository}/blobs/${digest}`);
        assert.equal(blob.status, 200, `blob ${digest} of ${repository}:${tag}`);
        assert.equal(sha256(blob.body as Buffer), digest);
        result[`${repository}@${digest}`] = (blob.body as Buffer).length;
      }
      const referrers = await get(`/v2/${repository}/referrers/${result[`${repository}:${tag}`]}`);
      result[`${repository}:${tag} referrers`] = (JSON.parse((referrers.body as Buffer).toString()) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest);
    }
  }
  return result;
}

describe('moving a single-node registry to PostgreSQL and S3', { skip }, () => {
  let pg: PostgresServer;
  let s3: S3Server;
  let work: string;
  let oldRoot: string;
  let configFile: string;
  let databaseUrl: string;
  let listener: Listener;
  let before_: Record<string, unknown>;
  let subscriptionId: string;
  let robotSecret: string;
  let refreshToken: string;
  let oldToken: string;
  let sqliteCounts: Record<string, number>;
  let lastSeq: number;
  const registries: AssembledRegistry[] = [];

  function configOf(root: string, storage: 'filesystem' | 's3', metadata: ConfigInput['metadata'], bucket: string) {
    return {
      storage: { root, ...s3.storage(bucket), driver: storage },
      metadata,
      http: { addr: '127.0.0.1:5000' },
      auth: { mode: 'token' as const, adminPassword: ADMIN.password },
      webhooks: FAST_WEBHOOKS,
      log: { level: 'silent' as const },
    };
  }
  async function start(config: ReturnType<typeof configOf>): Promise<AssembledRegistry> {
    const assembled = await assemble(validateConfig(config), pino({ level: 'silent' }), { announcePassword: () => undefined });
    registries.push(assembled);
    await assembled.webhooks.start();
    return assembled;
  }
  let bucket: string;

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'migrate-e2e-'));
    oldRoot = path.join(work, 'old');
    [pg, s3, listener] = await Promise.all([startPostgres(), startRadosgw(), startListener()]);
    [bucket, databaseUrl] = await Promise.all([s3.createBucket(), pg.createDatabase()]);
    // The single node's configuration, with the bucket the replicas will use already filled in.
    configFile = path.join(work, 'registry.yaml');
    await fs.writeFile(configFile, YAML.stringify(configOf(oldRoot, 'filesystem', undefined, bucket)));

    const old = await start(configOf(oldRoot, 'filesystem', undefined, bucket));
    const app = old.app;
    const admin = (method: 'post', route: string, body: object) => request(app)[method](route).set('Authorization', basic(ADMIN)).send(body);
    assert.equal((await admin('post', '/api/v1/users', { name: ALICE.username, password: ALICE.password, grants: [{ pattern: 'team/*', actions: 'pull,push' }] })).status, 201);
    const robot = await admin('post', '/api/v1/robots', { name: 'ci', grants: [{ pattern: 'tools/*', actions: 'pull' }] });
    assert.equal(robot.status, 201, robot.text);
    robotSecret = (robot.body as { secret: string }).secret;
    assert.equal((await admin('post', '/api/v1/users/alice/grants', { pattern: 'tools/cli', actions: 'pull' })).status, 201);
    const hook = await admin('post', '/api/v1/webhooks', { url: `${listener.url}/hook`, events: ['tag.created', 'tag.updated'], secret: 'a-webhook-secret-kept-across-the-move' });
    assert.equal(hook.status, 201, hook.text);
    subscriptionId = (hook.body as { id: string }).id;

    const v1 = await pushImage(app, 'team/app', 'v1', 'one');
    await pushImage(app, 'team/app', 'sbom', 'sbom', v1);
    await pushImage(app, 'tools/cli', 'latest', 'cli');
    await waitFor(() => listener.received.filter((r) => r.json?.tag === 'latest').length === 1, 'the old registry delivering its events');
    // One event still in the outbox at the move (the dispatcher stopped before fanning it out): the replicas send it.
    await old.webhooks.stop();
    await pushImage(app, 'tools/cli', '1.0', 'cli-1.0');
    assert.equal((await admin('post', '/api/v1/gc', { dryRun: true })).status, 200, 'a collection report (gc_runs) moves too');
    refreshToken = (await token(app, ['repository:team/app:pull'], ALICE, true)).refresh_token!;
    oldToken = (await token(app, ['repository:team/app:pull'], ALICE)).token;
    before_ = await view(app);
    await old.close();
    registries.length = 0;

    const db = new Database(path.join(oldRoot, 'registry.db'), { readonly: true });
    lastSeq = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").pluck().get() as number;
    sqliteCounts = Object.fromEntries(COPIED_TABLES.map((table) => [table.name, db.prepare(`SELECT COUNT(*) FROM ${table.name}`).pluck().get() as number]));
    db.close();
  });

  after(async () => {
    for (const registry of registries) await registry.close();
    await Promise.all([pg?.stop(), s3?.stop(), listener?.close()]);
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  it('migrate-blobs copies every blob into the bucket, verified (resuming: test/storage/migrate-blobs.test.ts)', async () => {
    const first = await runCli(oldRoot, ['-c', configFile, 'migrate-blobs', '--to', 's3', '--json']);
    assert.equal(first.code, 0, first.stderr);
    const summary = JSON.parse(first.stdout) as { total: number; copied: number; present: number; corrupt: unknown[]; failed: unknown[] };
    assert.ok(summary.total >= 5, `${summary.total} blobs`);
    assert.deepEqual([summary.copied, summary.present, summary.corrupt.length, summary.failed.length], [summary.total, 0, 0, 0]);
    assert.match(first.stderr, /\[1\/\d+\] copied sha256:/);
  });

  it('migrate-metadata copies every table into PostgreSQL, ids and sequences kept', async () => {
    const run = await runCli(oldRoot, ['-c', configFile, 'migrate-metadata', '--to', databaseUrl, '--json']);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout) as { tables: Array<{ table: string; copied: number }>; nextIds: Record<string, number>; signingKeyCopied: boolean };
    assert.deepEqual(Object.fromEntries(summary.tables.map((t) => [t.table, t.copied])), sqliteCounts);
    for (const table of ['repositories', 'manifests', 'tags', 'events', 'gc_runs', 'users', 'robots', 'grants', 'refresh_tokens', 'webhook_subscriptions', 'webhook_deliveries']) {
      assert.ok(sqliteCounts[table]! > 0, `the old registry had ${table}`);
    }
    assert.equal(summary.signingKeyCopied, true);

    // Row for row, column for column: what PostgreSQL holds is what SQLite held.
    const db = new Database(path.join(oldRoot, 'registry.db'), { readonly: true });
    const pool: Pool = createPool({ url: databaseUrl, poolSize: 2, statementTimeoutMs: 0, connectionTimeoutMs: 5_000 });
    try {
      for (const table of COPIED_TABLES) {
        const order = table.columns.slice(0, 2).join(', ');
        const columns = table.columns.join(', ');
        const fromSqlite = (db.prepare(`SELECT ${columns} FROM ${table.name} ORDER BY ${order}`).all() as Array<Record<string, unknown>>).map((row) =>
          // The collection report is JSON text in SQLite, JSONB (read back parsed) in PostgreSQL.
          table.name === 'gc_runs' ? { ...row, report: JSON.parse(row.report as string) } : row,
        );
        const fromPostgres = (await pool.query(`SELECT ${columns} FROM ${table.name} ORDER BY ${order}`)).rows.map((row: Record<string, unknown>) => {
          for (const column of table.booleans ?? []) row[column] = row[column] === null ? null : Number(row[column]);
          return row;
        });
        assert.deepEqual(fromPostgres, fromSqlite, table.name);
      }
      assert.equal(summary.nextIds['events.seq'], lastSeq + 1);
      const states = (await pool.query<{ state: string }>('SELECT DISTINCT state FROM webhook_deliveries')).rows.map((row) => row.state);
      assert.deepEqual(states, ['delivered'], 'the events sent before the move say so');
      const cursor = (await pool.query<{ seq: number }>("SELECT seq FROM webhook_cursor WHERE name = 'outbox'")).rows[0]!.seq;
      assert.ok(cursor < lastSeq, 'the fan-out cursor moved as it was, behind the last event');
    } finally {
      db.close();
      await pool.end();
    }
  });

  it('refuses to migrate into a database that already holds data', async () => {
    const again = await runCli(oldRoot, ['-c', configFile, 'migrate-metadata', '--to', databaseUrl]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds data \(repositories \(\d+ rows\)/);
    assert.equal(await pg.psql('SELECT COUNT(*) FROM repositories', databaseUrl), `${sqliteCounts.repositories}\n`);
  });

  it('refuses a target whose schema has a table the migration does not know', async () => {
    const other = await pg.createDatabase();
    await pg.psql('CREATE TABLE audit_log (id BIGINT PRIMARY KEY)', other);
    const run = await runCli(oldRoot, ['-c', configFile, 'migrate-metadata', '--to', other]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /PostgreSQL: table audit_log is not known to the migration/);
    assert.equal(await pg.psql('SELECT COUNT(*) FROM repositories', other), '0\n');
  });

  it('a registry on PostgreSQL and S3 serves the same images, accounts, tokens and webhooks', async () => {
    const fresh = path.join(work, 'replica');
    const seen = listener.received.length;
    const replica = await start(configOf(fresh, 's3', { driver: 'postgres', postgres: { url: databaseUrl } }, bucket));
    const app = replica.app;
    assert.deepEqual(await view(app), before_);

    // The same accounts, and the tokens the single node issued (its key moved into the database).
    const catalog = await request(app).get('/v2/team/app/tags/list').set('Authorization', `Bearer ${oldToken}`);
    assert.equal(catalog.status, 200, catalog.text);
    await token(app, ['repository:team/app:pull'], ALICE);
    const robot = await token(app, ['repository:tools/cli:pull'], { username: 'robot+ci', password: robotSecret });
    const claims = JSON.parse(Buffer.from(robot.token.split('.')[1]!, 'base64url').toString()) as { access: Array<{ name: string; actions: string[] }> };
    assert.deepEqual(claims.access, [{ type: 'repository', name: 'tools/cli', actions: ['pull'] }]);
    const refreshed = await request(app).post('/auth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken, service: SERVICE, scope: 'repository:team/app:pull' });
    assert.equal(refreshed.status, 200, refreshed.text);
    const wrong = await request(app).get(`/auth/token?service=${SERVICE}`).set('Authorization', basic({ username: 'alice', password: 'not-her-password' }));
    assert.equal(wrong.status, 401);

    // The subscription (secret intact) gets the event left in the outbox and the next push, and none of the old events again.
    await pushImage(app, 'team/app', 'v2', 'two');
    const delivered = await waitFor(() => listener.received.slice(seen).find((r) => r.json?.tag === 'v2'), 'the next push delivered by the replica');
    const expected = `sha256=${createHmac('sha256', 'a-webhook-secret-kept-across-the-move').update(delivered.body).digest('hex')}`;
    assert.equal(delivered.headers['x-registry-signature-256'], expected);
    const events = await request(app).get('/api/v1/events?limit=100').set('Authorization', basic(ADMIN));
    const newer = (events.body as { events: Array<{ seq: number }> }).events.map((e) => e.seq).filter((seq) => seq > lastSeq);
    assert.equal(Math.min(...newer), lastSeq + 1, 'the outbox numbering continues where SQLite left it');
    await waitFor(() => listener.received.slice(seen).some((r) => r.json?.tag === '1.0'), 'the event left in the outbox at the move');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(listener.received.slice(seen).map((r) => r.json?.tag).sort(), ['1.0', 'v2'], 'the event not yet sent and the new one, once each; none of the old');
    const deliveries = await request(app).get(`/api/v1/webhooks/${subscriptionId}/deliveries`).set('Authorization', basic(ADMIN));
    assert.equal(deliveries.status, 200);
  });
});
