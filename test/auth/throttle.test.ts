/**
 * Failed-login throttling per account and per client address (429 TOOMANYREQUESTS with
 * Retry-After, lifting as failures age out), with a hand-moved clock; and the audit trail:
 * failures logged with account, address and reason, and no secret in any log line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { addressGroup, isRefusal, MemoryLoginThrottle, type AttemptOutcome, type LoginKeys, type LoginThrottle } from '../../src/auth/throttle.js';
import { ADMIN, ADMIN_PASSWORD, addUser, basic, bearer, createAuthApp, getToken, TestClock, type AuthTestApp } from './helpers.js';

/** One attempt through the throttle's port: reserve, then settle with the outcome. */
async function attempt(throttle: LoginThrottle, keys: LoginKeys, outcome: AttemptOutcome = 'failed'): Promise<number> {
  const reservation = await throttle.reserve(keys);
  if (isRefusal(reservation)) return reservation.retryAfterSeconds;
  await throttle.settle(reservation, outcome);
  return 0;
}

const LIMITS = { maxFailuresPerAccount: 3, maxFailuresPerAddress: 100, windowSeconds: 60, maxTrackedKeys: 1000 };

describe('MemoryLoginThrottle', () => {
  it('blocks a key after max failures in the window and lifts as they age out', async () => {
    const clock = new TestClock();
    const throttle = new MemoryLoginThrottle(LIMITS, clock.now);
    const keys = { account: 'alice', address: '10.0.0.1' };
    for (let i = 0; i < 3; i++) {
      assert.equal(await attempt(throttle, keys), 0);
      clock.advance(10);
    }
    // Failures at t=0, 10, 20; now t=30: the first leaves the window at t=60.
    assert.equal(await throttle.retryAfter(keys), 30);
    assert.equal(await attempt(throttle, keys), 30, 'refused, and the refusal itself is not counted');
    assert.equal(await throttle.retryAfter({ account: 'bob', address: '10.0.0.1' }), 0, 'other accounts are unaffected');
    clock.advance(30);
    assert.equal(await throttle.retryAfter(keys), 0);
  });

  it('counts reservations still being checked: concurrent attempts cannot outrun the limit', async () => {
    const throttle = new MemoryLoginThrottle(LIMITS, new TestClock().now);
    const keys = { account: 'alice', address: '10.0.0.9' };
    const results = await Promise.all(Array.from({ length: 10 }, () => throttle.reserve(keys)));
    assert.equal(results.filter((result) => !isRefusal(result)).length, 3);
    assert.ok(results.filter(isRefusal).every((refusal) => refusal.retryAfterSeconds >= 1));
    // The checks were never judged (the server was busy): released, they no longer count.
    for (const result of results) if (!isRefusal(result)) await throttle.settle(result, 'released');
    assert.equal(await throttle.retryAfter(keys), 0);
  });

  it('a success clears the account count but not the address count', async () => {
    const throttle = new MemoryLoginThrottle({ ...LIMITS, maxFailuresPerAccount: 2, maxFailuresPerAddress: 4 }, new TestClock().now);
    const keys = { account: 'alice', address: '10.0.0.2' };
    await attempt(throttle, keys);
    await attempt(throttle, { account: 'bob', address: '10.0.0.2' });
    await attempt(throttle, keys, 'succeeded');
    await attempt(throttle, keys);
    assert.equal(await throttle.retryAfter(keys), 0, 'alice: one failure since her success, the address three');
    await attempt(throttle, { account: 'bob', address: '10.0.0.2' });
    assert.ok((await throttle.retryAfter({ account: 'carol', address: '10.0.0.2' })) > 0, 'the address has 4 failures');
  });

  it('groups IPv6 addresses by /64 and reads IPv4-mapped addresses as IPv4', () => {
    assert.equal(addressGroup('2001:db8:1:2:aaaa::1'), addressGroup('2001:db8:1:2:ffff:ffff:ffff:fffe'));
    assert.notEqual(addressGroup('2001:db8:1:2::1'), addressGroup('2001:db8:1:3::1'));
    assert.equal(addressGroup('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressGroup('fe80::1%eth0'), addressGroup('fe80::2'));
    assert.equal(addressGroup('not-an-address'), 'not-an-address');
  });

  it('stays within maxTrackedKeys by dropping unlocked keys, never a locked one', async () => {
    const clock = new TestClock();
    const throttle = new MemoryLoginThrottle({ ...LIMITS, maxFailuresPerAccount: 2, maxFailuresPerAddress: 1000, maxTrackedKeys: 100 }, clock.now);
    const victim = { account: 'victim', address: '10.9.0.1' };
    await attempt(throttle, victim);
    await attempt(throttle, victim);
    assert.ok((await throttle.retryAfter(victim)) > 0, 'locked');
    for (let i = 0; i < 500; i++) await attempt(throttle, { account: `unknown${i}`, address: '10.9.0.2' });
    assert.ok(throttle.size <= 100, `tracked ${throttle.size}`);
    assert.ok((await throttle.retryAfter(victim)) > 0, 'the flood did not unlock the victim');
    assert.equal(await throttle.retryAfter({ account: 'unknown0', address: '10.9.0.3' }), 0, 'unlocked keys were dropped');
  });

  it('refuses keys it cannot track when every tracked key is locked, until they expire', async () => {
    const clock = new TestClock();
    const throttle = new MemoryLoginThrottle({ maxFailuresPerAccount: 1, maxFailuresPerAddress: 1, windowSeconds: 60, maxTrackedKeys: 100 }, clock.now);
    for (let i = 0; i < 50; i++) await attempt(throttle, { account: `user${i}`, address: `10.8.0.${i}` });
    assert.equal(throttle.size, 100);
    const stranger = { account: 'stranger', address: '10.8.1.1' };
    const refused = await throttle.reserve(stranger);
    assert.ok(isRefusal(refused) && refused.retryAfterSeconds >= 1, 'no room: refused, nothing evicted');
    assert.ok((await throttle.retryAfter({ account: 'user0', address: '10.8.0.0' })) > 0);
    clock.advance(61);
    assert.equal(await attempt(throttle, stranger), 0, 'room again once the locks expired');
    assert.equal(await throttle.retryAfter({ account: 'user0', address: '10.8.0.0' }), 0);
  });
});

describe('throttling over HTTP', () => {
  let t: AuthTestApp;
  before(async () => {
    t = await createAuthApp({ throttle: { maxFailuresPerAccount: 3, maxFailuresPerAddress: 8, windowSeconds: 120 } });
  });
  after(() => t.close());

  it('kicks in after repeated failures for one account, refuses even the right password, then lifts', async () => {
    const user = await addUser(t, 'victim', []);
    for (let i = 0; i < 3; i++) {
      const res = await request(t.app).get('/auth/token').set('Authorization', basic('victim', `wrong-${i}-password`));
      assert.equal(res.status, 401);
    }
    const throttled = await request(t.app).get('/auth/token').set('Authorization', basic(user.username, user.password));
    assert.equal(throttled.status, 429);
    assert.equal(throttled.body.errors[0].code, 'TOOMANYREQUESTS');
    assert.equal(throttled.headers['retry-after'], '120');
    const oauth = await request(t.app).post('/auth/token').type('form').send({ grant_type: 'password', username: user.username, password: user.password });
    assert.equal(oauth.status, 429);

    t.clock.advance(121);
    const lifted = await request(t.app).get('/auth/token').set('Authorization', basic(user.username, user.password));
    assert.equal(lifted.status, 200);
  });

  it('throttles a client address guessing across many accounts, including robot Basic on /v2/', async () => {
    t.clock.advance(1000);
    for (let i = 0; i < 8; i++) {
      const res = await request(t.app).get('/v2/').set('Authorization', basic(`robot+guess${i}`, 'secret'));
      assert.equal(res.status, 401);
    }
    const blocked = await request(t.app).get('/v2/').set('Authorization', basic('robot+another', 'secret'));
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.headers['retry-after']) > 0);
    const tokenEndpoint = await request(t.app).get('/auth/token').set('Authorization', basic(ADMIN.username, ADMIN.password));
    assert.equal(tokenEndpoint.status, 429, 'same address, same block');
    const admin = await request(t.app).get('/api/v1/users').set('Authorization', basic(ADMIN.username, ADMIN.password));
    assert.equal(admin.status, 429, 'the admin API shares the throttle');
    t.clock.advance(121);
    await getToken(t.app, [], ADMIN);
  });

  it('user credentials sent as Basic to /v2/ are accepted and throttled like any login', async () => {
    t.clock.advance(1000);
    const user = await addUser(t, 'preemptive', []);
    assert.equal((await request(t.app).get('/v2/').set('Authorization', basic(user.username, user.password))).status, 200);
    for (let i = 0; i < 3; i++) {
      const res = await request(t.app).get('/v2/').set('Authorization', basic(user.username, `wrong-${i}-password`));
      assert.equal(res.status, 401);
    }
    assert.equal((await request(t.app).get('/auth/token').set('Authorization', basic(user.username, user.password))).status, 429);
  });

  it('logs failures for audit (account, address, reason) and never a password, secret or token', async () => {
    t.clock.advance(1000);
    const robot = await t.accounts.createRobot({ name: 'logbot', grants: [{ pattern: 'ci/*', actions: 'pull' }] });
    await request(t.app).get('/auth/token').set('Authorization', basic('admin', 'Sup3r-Secret-Guess'));
    await request(t.app).get('/v2/').set('Authorization', basic('robot+logbot', 'WrongRobotSecret-xyz'));
    const login = await request(t.app)
      .post('/auth/token')
      .type('form')
      .send({ grant_type: 'password', username: 'admin', password: ADMIN_PASSWORD, access_type: 'offline' });
    assert.equal(login.status, 200);
    const robotToken = await getToken(t.app, ['repository:ci/app:pull'], { username: 'robot+logbot', password: robot.secret });
    const [head, body] = (login.body.access_token as string).split('.');
    await request(t.app).get('/v2/').set('Authorization', bearer(`${head}.${body}.${robotToken.token.split('.')[2]}`));
    await request(t.app).post('/api/v1/users').set('Authorization', basic('admin', ADMIN_PASSWORD)).type('json').send('{"name":"x","password":"Broken-Json-Secret"');

    const failures = t.logRecords().filter((record) => record.audit === 'authentication-failed');
    const failure = failures.find((record) => record.account === 'admin' && record.reason === 'wrong password');
    assert.ok(failure, JSON.stringify(failures));
    assert.equal(typeof failure.address, 'string');
    assert.ok(failures.some((record) => record.account === 'robot+logbot' && record.reason === 'wrong robot secret'));
    assert.ok(failures.some((record) => record.account === 'admin' && /invalid signature/.test(String(record.reason))), JSON.stringify(failures));

    const text = t.logText();
    for (const secret of [
      ADMIN_PASSWORD,
      'Sup3r-Secret-Guess',
      'WrongRobotSecret-xyz',
      robot.secret,
      login.body.access_token as string,
      login.body.refresh_token as string,
      (login.body.refresh_token as string).split('.')[2]!,
      robotToken.token,
      'Broken-Json-Secret',
    ]) {
      assert.ok(!text.includes(secret), `a secret leaked into the log: ${secret.slice(0, 6)}…`);
    }
  });
});
