/**
 * The PostgreSQL backend's groundwork: migrations under the advisory lock (several replicas
 * migrating one database at once, forced to start while the lock is held), `registry migrate`,
 * sslmode from the URL, and BIGINT / COUNT(*) parsed into numbers once.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { migrate, MIGRATIONS } from '../../src/metadata/postgres/migrations.js';
import { createPool, LOCKS } from '../../src/metadata/postgres/pool.js';
import { freshPostgresDatabase, POSTGRES_SKIP } from '../helpers/metadata-backends.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';

const settings = (url: string) => ({ url, poolSize: 4, statementTimeoutMs: 30_000, connectionTimeoutMs: 10_000 });

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) clean[name] = value;
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'registry.js'), ...args], { cwd: PROJECT_ROOT, env: { ...clean, ...env }, timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

describe('PostgreSQL groundwork', { skip: POSTGRES_SKIP }, () => {
  it('replicas migrating one database at once take turns: each migration runs once, none fails', async () => {
    const url = await freshPostgresDatabase();
    const holder = createPool(settings(url));
    const pools = Array.from({ length: 6 }, () => createPool(settings(url)));
    try {
      // Hold the migration lock so that every migrator starts, and has to wait, before any runs.
      const held = await holder.connect();
      await held.query('SELECT pg_advisory_lock($1, 0)', [LOCKS.migrations]);
      let finished = 0;
      const runs = pools.map((pool) => migrate(pool).then((result) => (finished++, result)));
      for (let i = 0; i < 200; i++) {
        const { rows } = await holder.query<{ waiting: number }>(
          "SELECT COUNT(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND NOT granted",
          [LOCKS.migrations],
        );
        if (rows[0]!.waiting === pools.length) break;
        await sleep(25);
      }
      assert.equal(finished, 0, 'a migrator ran while another held the lock');
      await held.query('SELECT pg_advisory_unlock($1, 0)', [LOCKS.migrations]);
      held.release();
      const results = await Promise.all(runs);
      const applied = results.flatMap((result) => result.applied);
      assert.deepEqual(applied.sort(), MIGRATIONS.map((m) => m.name).sort(), 'every migration applied exactly once');
      const { rows } = await holder.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
      assert.deepEqual(rows.map((row) => row.name), MIGRATIONS.map((m) => m.name).sort());
    } finally {
      await Promise.all([holder, ...pools].map((pool) => pool.end()));
    }
  });

  it('parses BIGINT, COUNT(*) and SUM as numbers, and refuses what a number cannot hold exactly', async () => {
    const pool = createPool(settings(await freshPostgresDatabase()));
    try {
      const { rows } = await pool.query('SELECT 5000000000::bigint AS big, COUNT(*) AS count, SUM(x) AS sum FROM (VALUES (3::bigint), (4::bigint)) v(x)');
      assert.deepEqual(rows[0], { big: 5_000_000_000, count: 2, sum: 7 });
      await assert.rejects(pool.query('SELECT 9007199254740993::bigint AS n'), /beyond the integers JavaScript represents exactly/);
    } finally {
      await pool.end();
    }
  });

  it('honours sslmode from the URL: disable connects in the clear, require insists on TLS', async () => {
    const url = new URL(await freshPostgresDatabase());
    url.searchParams.set('sslmode', 'disable');
    const clear = createPool(settings(url.toString()));
    url.searchParams.set('sslmode', 'require');
    const tls = createPool(settings(url.toString()));
    try {
      assert.equal((await clear.query('SELECT 1 AS one')).rows[0].one, 1);
      // The test server has no certificate: a client that requires TLS must not fall back to plain text.
      await assert.rejects(tls.query('SELECT 1'), /does not support SSL/);
    } finally {
      await Promise.all([clear.end(), tls.end()]);
    }
  });

  it('`registry migrate` applies the schema, then finds it up to date; a bad URL names the setting', async () => {
    const url = await freshPostgresDatabase();
    const env = { REGISTRY_METADATA_DRIVER: 'postgres', REGISTRY_METADATA_POSTGRES_URL: url, REGISTRY_AUTH: 'none' };
    const first = await cli(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`applied ${MIGRATIONS.map((m) => m.name).join(', ')}`));
    const again = await cli(['migrate', '--json'], env);
    assert.deepEqual(JSON.parse(again.stdout), { driver: 'postgres', applied: [], alreadyApplied: MIGRATIONS.map((m) => m.name) });
    const missing = await cli(['migrate'], { REGISTRY_METADATA_DRIVER: 'postgres', REGISTRY_AUTH: 'none' });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /metadata\.postgres\.url \(REGISTRY_METADATA_POSTGRES_URL\): is required with metadata\.driver postgres/);
  });
});
