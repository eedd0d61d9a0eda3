/**
 * Auth across replicas sharing one PostgreSQL database: login throttling counted in the
 * database (concurrent guesses on two replicas cannot outrun the limit), the token signing key
 * the database holds (created once; a token issued by one replica works on the other), and a
 * replica with a signing key the others do not trust refusing to start, saying why.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { isRefusal } from '../../src/auth/throttle.js';
import { PostgresLoginThrottle } from '../../src/metadata/postgres/login-throttle.js';
import { createPool, type Pool } from '../../src/metadata/postgres/pool.js';
import { freshPostgresDatabase, POSTGRES_SKIP } from '../helpers/metadata-backends.js';
import { ADMIN, addUser, basic, bearer, createAuthApp, getToken, type AuthTestApp } from './helpers.js';

const LIMITS = { maxFailuresPerAccount: 5, maxFailuresPerAddress: 100, windowSeconds: 60, maxTrackedKeys: 1000 };

describe('auth across replicas (PostgreSQL)', { skip: POSTGRES_SKIP }, () => {
  let url: string;
  let pools: Pool[];
  const apps: AuthTestApp[] = [];
  let dir: string;

  before(async () => {
    url = await freshPostgresDatabase();
    const metadata = { driver: 'postgres' as const, postgres: { url } };
    apps.push(await createAuthApp({}, { metadata }), await createAuthApp({}, { metadata }));
    pools = [0, 1].map(() => createPool({ url, poolSize: 10, statementTimeoutMs: 30_000, connectionTimeoutMs: 10_000 }));
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'replica-keys-'));
  });
  after(async () => {
    await Promise.all([...apps.map((app) => app.close()), ...(pools ?? []).map((pool) => pool.end())]);
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('throttle: 20 guesses at once on two replicas get exactly the limit of checks', async () => {
    const throttles = pools.map((pool) => new PostgresLoginThrottle(pool, LIMITS));
    const keys = (i: number) => ({ account: 'alice', address: `10.1.0.${i}` });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => throttles[i % 2]!.reserve(keys(i))));
    const granted = results.filter((result) => !isRefusal(result));
    assert.equal(granted.length, LIMITS.maxFailuresPerAccount, `${granted.length} checks ran for one account`);
    assert.ok(results.filter(isRefusal).every((refusal) => refusal.retryAfterSeconds >= 1));
    // Released (never judged), they no longer count, on either replica.
    for (const reservation of granted) if (!isRefusal(reservation)) await throttles[1]!.settle(reservation, 'released');
    assert.equal(await throttles[0]!.retryAfter(keys(0)), 0);
  });

  it('throttle: a success clears the account count but not the address count', async () => {
    const [a, b] = pools.map((pool) => new PostgresLoginThrottle(pool, { ...LIMITS, maxFailuresPerAccount: 2, maxFailuresPerAddress: 4 }));
    const settle = async (throttle: PostgresLoginThrottle, account: string, outcome: 'failed' | 'succeeded') => {
      const reservation = await throttle.reserve({ account, address: '10.2.0.1' });
      assert.ok(!isRefusal(reservation));
      await throttle.settle(reservation, outcome);
    };
    await settle(a!, 'carol', 'failed');
    await settle(b!, 'dave', 'failed');
    await settle(a!, 'carol', 'succeeded');
    await settle(b!, 'carol', 'failed');
    assert.equal(await a!.retryAfter({ account: 'carol', address: '10.2.0.1' }), 0, 'carol: one failure since her success');
    await settle(b!, 'dave', 'failed');
    assert.ok((await a!.retryAfter({ account: 'erin', address: '10.2.0.1' })) > 0, 'the address has 4 failures');
  });

  it('one signing key, created once by the database: a token from one replica works on the other', async () => {
    const { rows } = await pools[0]!.query('SELECT COUNT(*) AS n FROM token_signing_keys');
    assert.equal(rows[0].n, 1);
    const alice = await addUser(apps[0]!, 'alice', [{ pattern: 'team/*', actions: 'pull,push' }]);
    const { token } = await getToken(apps[0]!.app, ['repository:team/app:pull'], alice);
    const res = await request(apps[1]!.app).get('/v2/team/app/tags/list').set('Authorization', bearer(token));
    assert.equal(res.status, 404, `replica 2 answered ${res.status} ${res.text}: the token should be accepted (the repository does not exist)`);
    assert.equal(res.body.errors[0].code, 'NAME_UNKNOWN');
  });

  it("a user deleted through one replica: the token it held is refused on both (the read caches hear of it)", async () => {
    const erin = await addUser(apps[0]!, 'erin-cache', [{ pattern: 'team/*', actions: 'pull' }]);
    const { token } = await getToken(apps[0]!.app, ['repository:team/app:pull'], erin);
    const ask = (app: AuthTestApp) => request(app.app).get('/v2/team/app/tags/list').set('Authorization', bearer(token));
    // Both replicas have read (and cached) erin's account and grants.
    for (let round = 0; round < 3; round++) for (const app of apps) assert.equal((await ask(app)).status, 404);
    const removed = await request(apps[1]!.app).delete('/api/v1/users/erin-cache').set('Authorization', basic(ADMIN.username, ADMIN.password));
    assert.equal(removed.status, 204, removed.text);
    assert.equal((await ask(apps[1]!)).status, 401, 'refused at once where it was deleted');
    // Well inside the caches' 2 s expiry: the notice, not the expiry, must end it.
    const deadline = Date.now() + 1_500;
    while ((await ask(apps[0]!)).status !== 401) {
      assert.ok(Date.now() < deadline, 'replica 1 still accepts the token 1.5 s after the deletion');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it('failed logins on one replica lock the account on the other', async () => {
    const bob = await addUser(apps[0]!, 'bob', []);
    for (let i = 0; i < 5; i++) {
      const res = await request(apps[i % 2]!.app).get('/v2/').set('Authorization', basic(bob.username, 'wrong password'));
      assert.equal(res.status, 401);
    }
    const locked = await request(apps[1]!.app).get('/v2/').set('Authorization', basic(bob.username, bob.password));
    assert.equal(locked.status, 429, `the right password after 5 failures elsewhere: ${locked.status}`);
    assert.ok(Number(locked.headers['retry-after']) >= 1);
    assert.equal((await request(apps[0]!.app).get('/v2/').set('Authorization', basic(ADMIN.username, ADMIN.password))).status, 200);
  });

  it('a replica whose signing key the others do not trust refuses to start, saying why', async () => {
    const file = path.join(dir, 'other-key.pem');
    await fs.writeFile(file, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await assert.rejects(
      createAuthApp({ token: { signingKey: file } }, { metadata: { driver: 'postgres', postgres: { url } } }),
      /refusing to start: the other replicas of this database sign tokens with key .* does not trust theirs/,
    );
  });
});
