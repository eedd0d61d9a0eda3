/**
 * The PostgreSQL stores prepare their hot statements once per connection. During a rolling
 * upgrade the migration Job runs while replicas of the previous release keep their
 * connections, so a later release adding a column (the only kind of change a release may make
 * to what the one before reads: docs/scale-out.md, Upgrades) must not break a statement those
 * replicas already prepared. PostgreSQL refuses to run a prepared `SELECT *` whose tables
 * gained a column ("cached plan must not change result type"); every prepared statement names
 * its columns instead.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { manifestOf, openPostgresForTest, POSTGRES_SKIP, type OpenedBackend } from '../helpers/metadata-backends.js';
import type { PostgresBackend } from '../../src/metadata/postgres/index.js';

const ACTOR = { name: 'alice', kind: 'user' } as const;
const digestOf = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** The tables the prepared statements read or write. */
const TABLES = ['repositories', 'tags', 'manifests', 'repository_manifests', 'blobs', 'repository_blobs', 'events', 'users', 'grants', 'robots', 'webhook_cursor', 'webhook_deliveries', 'webhook_subscriptions', 'webhook_attempts'];

describe('prepared statements across a later release adding columns', { skip: POSTGRES_SKIP }, () => {
  let opened: OpenedBackend<PostgresBackend>;
  before(async () => {
    opened = await openPostgresForTest();
  });
  after(() => opened?.cleanup());

  it('every hot read and write still runs, with the same answers, after each of its tables gained a column', async () => {
    const { backend } = opened;
    const layer = { digest: digestOf('layer'), size: 5 };
    await backend.metadata.linkBlob('team/app', layer, ACTOR);
    const manifest = manifestOf('prepared', [layer.digest]);
    const user = await backend.accounts.createUser({ name: 'bob', role: 'user', passwordHash: 'x' });
    await backend.accounts.addGrant({ kind: 'user', id: user.id }, 'team/*', ['pull']);
    let tag = 0;

    /** What a pull, a token check, a push and the dispatcher run, through the stores' prepared statements. */
    const hotPaths = async () => {
      await backend.metadata.putManifest('team/app', manifest, `v${++tag}`, ACTOR);
      return {
        tagged: (await backend.metadata.getTaggedManifest('team/app', `v${tag}`))?.digest,
        byDigest: (await backend.metadata.getManifest('team/app', manifest.digest))?.digest,
        resolved: await backend.metadata.resolveTag('team/app', `v${tag}`),
        blob: await backend.metadata.getRepositoryBlob('team/app', layer.digest),
        exists: await backend.metadata.repositoryExists('team/app'),
        events: (await backend.metadata.readEvents(0, 100)).map((event) => [event.type, event.tag]).slice(-1),
        user: (await backend.accounts.getUser('bob'))?.name,
        grants: (await backend.accounts.listGrants({ kind: 'user', id: user.id })).map((grant) => grant.pattern),
        cursor: await backend.webhooks.outboxCursor(),
        due: (await backend.webhooks.dueDeliveries(Date.now(), 10)).length,
      };
    };
    // Twice, so that every statement is prepared on the connection before the schema changes.
    await hotPaths();
    const beforeChange = await hotPaths();

    for (const table of TABLES) await backend.pool.query(`ALTER TABLE ${table} ADD COLUMN later_release_column INTEGER DEFAULT 0`);

    const afterChange = await hotPaths();
    assert.deepEqual(afterChange, { ...beforeChange, events: [['tag.created', `v${tag}`]] });
    assert.equal(beforeChange.tagged, manifest.digest);
    assert.deepEqual(beforeChange.events, [['tag.created', `v${tag - 1}`]]);
  });
});
