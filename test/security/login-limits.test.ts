/**
 * Login limits under attack (issue 11, items 2 and 6): concurrent guesses cannot outrun the
 * per-account and per-address limits (the attempt is reserved before the password is hashed),
 * and flooding the throttle with failures for unknown names from many loopback addresses
 * never unlocks a locked account.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { addUser, basic, createAuthApp, type AuthTestApp } from '../auth/helpers.js';
import { runPool, send, serve, type Served } from './support.js';

function auditReasons(t: AuthTestApp, account: string): string[] {
  return t
    .logRecords()
    .filter((record) => record.audit === 'authentication-failed' && record.account === account)
    .map((record) => String(record.reason));
}

describe('concurrent guesses', () => {
  let t: AuthTestApp;
  before(async () => {
    t = await createAuthApp();
  });
  after(() => t.close());

  it('100 guesses at once at one account: at most 5 passwords are checked, the rest get 429 with Retry-After', async () => {
    const user = await addUser(t, 'target', []);
    const right = 37;
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        request(t.app)
          .get('/auth/token')
          .set('Authorization', basic(user.username, i === right ? user.password : `wrong-guess-${i}`)),
      ),
    );
    const statuses = answers.map((res) => res.status);
    const throttled = answers.filter((res) => res.status === 429);
    const checked = answers.length - throttled.length;
    assert.ok(checked <= 5, `${checked} passwords were checked (statuses ${JSON.stringify(statuses)})`);
    assert.ok(throttled.length >= 95);
    for (const res of throttled) {
      assert.equal(res.body.errors[0].code, 'TOOMANYREQUESTS');
      assert.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After says when to come back');
    }
    assert.ok(auditReasons(t, 'target').filter((reason) => reason === 'wrong password').length <= 5);
  });

  it('100 guesses at once across 100 accounts from one address: at most 20 are checked', async () => {
    t.clock.advance(3600);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => request(t.app).get('/auth/token').set('Authorization', basic(`someone${i}`, 'a-guessed-password'))),
    );
    const checked = answers.filter((res) => res.status !== 429).length;
    assert.ok(checked <= 20, `${checked} passwords were checked`);
    assert.ok(answers.filter((res) => res.status === 429).every((res) => Number(res.headers['retry-after']) >= 1));
  });
});

describe('flooding the throttle table', () => {
  /** 10,600 failures for unknown robots from 530 loopback addresses (20 each, the address limit): the attack. */
  const ADDRESSES = 530;
  const PER_ADDRESS = 20;

  /** Locks `victim` with five failures, then floods; returns the answer to the victim's right password afterwards. */
  async function lockThenFlood(t: AuthTestApp, served: Served, addresses: number): Promise<{ status: number; throttledFlood: number }> {
    const victim = await addUser(t, 'victim', []);
    for (let i = 0; i < 5; i++) {
      const res = await send(served.port, { path: '/auth/token', headers: { Authorization: basic('victim', `wrong-${i}-password`) }, localAddress: '127.0.0.2' });
      assert.equal(res.status, 401);
    }
    const locked = await send(served.port, { path: '/auth/token', headers: { Authorization: basic(victim.username, victim.password) }, localAddress: '127.0.0.3' });
    assert.equal(locked.status, 429, 'the victim is locked before the flood');

    const agents: http.Agent[] = [];
    const tasks: Array<() => Promise<number>> = [];
    for (let a = 0; a < addresses; a++) {
      const localAddress = `127.${10 + (a >> 8)}.${a & 255}.1`;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      agents.push(agent);
      for (let i = 0; i < PER_ADDRESS; i++) {
        const name = `robot+ghost-${a}-${i}`;
        tasks.push(async () => (await send(served.port, { path: '/v2/', headers: { Authorization: basic(name, 'not-the-secret') }, localAddress, agent })).status);
      }
    }
    try {
      const statuses = await runPool(tasks, 16);
      assert.ok(statuses.every((status) => status === 401 || status === 429), `unexpected statuses ${[...new Set(statuses)].join(',')}`);
      const after = await send(served.port, { path: '/auth/token', headers: { Authorization: basic(victim.username, victim.password) }, localAddress: '127.0.0.4' });
      return { status: after.status, throttledFlood: statuses.filter((status) => status === 429).length };
    } finally {
      for (const agent of agents) agent.destroy();
    }
  }

  it('10,600 failed logins for unknown robots from 530 addresses leave a locked account locked', async (ctx) => {
    const t = await createAuthApp();
    const served = await serve(t.app);
    ctx.after(async () => {
      await served.close();
      await t.close();
    });
    const { status } = await lockThenFlood(t, served, ADDRESSES);
    assert.equal(status, 429, 'the victim is still locked');
    t.clock.advance(301);
    const lifted = await send(served.port, { path: '/auth/token', headers: { Authorization: basic('victim', 'victim-password-123') }, localAddress: '127.0.0.4' });
    assert.equal(lifted.status, 200, 'and unlocked once its window has passed');
  });

  it('with a small table (maxTrackedKeys 200), a flood five times its size still leaves the account locked', async (ctx) => {
    const t = await createAuthApp({ throttle: { maxTrackedKeys: 200 } });
    const served = await serve(t.app);
    ctx.after(async () => {
      await served.close();
      await t.close();
    });
    const { status, throttledFlood } = await lockThenFlood(t, served, 50);
    assert.equal(status, 429, 'the victim is still locked');
    assert.equal(throttledFlood, 0, 'unlocked keys made room for the flood: none of it was refused');
  });
});
