/**
 * Failed-login throttling per account and per client address (429 TOOMANYREQUESTS with
 * Retry-After, lifting as failures age out), with a hand-moved clock; and the audit trail:
 * failures logged with account, address and reason, and no secret in any log line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { LoginThrottle } from '../../src/auth/throttle.js';
import { ADMIN, ADMIN_PASSWORD, addUser, basic, bearer, createAuthApp, getToken, TestClock, type AuthTestApp } from './helpers.js';

describe('LoginThrottle', () => {
  it('blocks a key after max failures in the window and lifts as they age out', () => {
    const clock = new TestClock();
    const throttle = new LoginThrottle({ maxFailuresPerAccount: 3, maxFailuresPerAddress: 100, windowSeconds: 60 }, clock.now);
    const keys = { account: 'alice', address: '10.0.0.1' };
    for (let i = 0; i < 3; i++) {
      assert.equal(throttle.retryAfter(keys), 0);
      throttle.recordFailure(keys);
      clock.advance(10);
    }
    // Failures at t=0, 10, 20; now t=30: the first leaves the window at t=60.
    assert.equal(throttle.retryAfter(keys), 30);
    assert.equal(throttle.retryAfter({ account: 'bob', address: '10.0.0.1' }), 0, 'other accounts are unaffected');
    clock.advance(30);
    assert.equal(throttle.retryAfter(keys), 0);
  });

  it('a success clears the account count but not the address count', () => {
    const clock = new TestClock();
    const throttle = new LoginThrottle({ maxFailuresPerAccount: 2, maxFailuresPerAddress: 4, windowSeconds: 60 }, clock.now);
    const keys = { account: 'alice', address: '10.0.0.2' };
    throttle.recordFailure(keys);
    throttle.recordFailure({ account: 'bob', address: '10.0.0.2' });
    throttle.recordSuccess(keys);
    throttle.recordFailure(keys);
    assert.equal(throttle.retryAfter(keys), 0, 'alice: one failure since her success, the address three');
    throttle.recordFailure({ account: 'bob', address: '10.0.0.2' });
    assert.ok(throttle.retryAfter({ account: 'carol', address: '10.0.0.2' }) > 0, 'the address has 4 failures');
  });

  it('keeps at most maxKeys keys', () => {
    const clock = new TestClock();
    const throttle = new LoginThrottle({ maxFailuresPerAccount: 1, maxFailuresPerAddress: 1, windowSeconds: 60 }, clock.now, 10);
    for (let i = 0; i < 50; i++) throttle.recordFailure({ account: `user${i}`, address: `10.1.0.${i}` });
    assert.equal(throttle.retryAfter({ account: 'user0', address: '10.1.0.0' }), 0, 'the oldest keys were dropped');
    assert.ok(throttle.retryAfter({ account: 'user49', address: '10.1.0.49' }) > 0);
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

  it('user credentials sent as Basic to /v2/ are refused without locking the account out', async () => {
    t.clock.advance(1000);
    const user = await addUser(t, 'preemptive', []);
    for (let i = 0; i < 5; i++) {
      const res = await request(t.app).get('/v2/').set('Authorization', basic(user.username, user.password));
      assert.equal(res.status, 401);
    }
    assert.equal((await request(t.app).get('/auth/token').set('Authorization', basic(user.username, user.password))).status, 200);
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
