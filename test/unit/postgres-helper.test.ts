/** The PostgreSQL test server starts, creates databases, answers SQL and stops. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { postgresUnavailable, startPostgres, type PostgresServer } from '../helpers/postgres.js';

const unavailable = postgresUnavailable();
if (unavailable) console.log(`# skipping PostgreSQL helper test: ${unavailable}`);

test('a throwaway PostgreSQL server on loopback', { skip: unavailable ?? false }, async (t) => {
  let pg: PostgresServer | undefined;
  t.after(() => pg?.stop());
  pg = await startPostgres();
  assert.match(pg.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
  const url = await pg.createDatabase();
  assert.equal((await pg.psql('SELECT current_database()', url)).trim(), new URL(url).pathname.slice(1));
  assert.equal((await pg.psql("SHOW listen_addresses")).trim(), '127.0.0.1');
});
