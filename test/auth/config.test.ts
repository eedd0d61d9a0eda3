/**
 * Auth configuration (defaults, REGISTRY_AUTH / REGISTRY_ADMIN_PASSWORD), the first admin on
 * first start, the signing key kept across restarts, and `auth.mode: none`.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import request from 'supertest';
import { isLoopbackAddress } from '../../src/auth/exposure.js';
import { ConfigError, loadConfig, validateConfig } from '../../src/config/load.js';
import { assemble } from '../../src/server.js';
import { basic, bearer, getToken, headerOf } from './helpers.js';

const SHIPPED = 'config/registry.yaml';

describe('auth configuration', () => {
  it('defaults to token auth with 5-minute ES256 tokens', () => {
    const config = validateConfig({});
    assert.equal(config.auth.mode, 'token');
    assert.equal(config.auth.token.ttlSeconds, 300);
    assert.equal(config.auth.token.algorithm, 'ES256');
    assert.ok(config.auth.token.leewaySeconds > 0);
    assert.deepEqual(config.auth.publicRepositories, []);
  });

  it('reads REGISTRY_AUTH, REGISTRY_ADMIN_PASSWORD and list settings from the environment', () => {
    const config = loadConfig({
      file: SHIPPED,
      env: {
        REGISTRY_AUTH: 'none',
        REGISTRY_ADMIN_PASSWORD: 'from-the-environment',
        REGISTRY_AUTH_PUBLIC_REPOSITORIES: 'public/** library/*',
        REGISTRY_AUTH_TOKEN_TTL_SECONDS: '600',
      },
    });
    assert.equal(config.auth.mode, 'none');
    assert.equal(config.auth.adminPassword, 'from-the-environment');
    assert.deepEqual(config.auth.publicRepositories, ['public/**', 'library/*']);
    assert.equal(config.auth.token.ttlSeconds, 600);
  });

  it('the shipped config file documents and sets the defaults', () => {
    const config = loadConfig({ file: SHIPPED, env: {} });
    assert.deepEqual(config.auth, validateConfig({}).auth);
  });

  it('names a bad setting', () => {
    assert.throws(() => loadConfig({ file: SHIPPED, env: { REGISTRY_AUTH: 'ldap' } }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /auth\.mode/);
      return true;
    });
    assert.throws(() => validateConfig({ auth: { publicRepositories: ['Bad/**x'] } }), /auth\.publicRepositories/);
    assert.throws(() => validateConfig({ auth: { adminPassword: 'short' } }), /auth\.adminPassword/);
    assert.throws(() => validateConfig({ auth: { token: { ttlSeconds: 5 } } }), /auth\.token\.ttlSeconds/);
    assert.throws(() => validateConfig({ auth: { external: { issuer: 'x', realm: 'https://auth/token', keys: [] } } }), /auth\.external\.keys/);
  });

  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopbackAddress(host), host);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', '::ffff:10.0.0.1']) assert.ok(!isLoopbackAddress(host), host);
  });
});

describe('first start', () => {
  let root: string;
  let logged: string;
  const logger = () =>
    pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          logged += chunk.toString('utf8');
          callback();
        },
      }),
    );
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-first-start-'));
    logged = '';
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('creates an admin with a generated password shown once, outside the log; keeps the signing key across restarts', async () => {
    const config = validateConfig({ storage: { root }, auth: { mode: 'token' } });
    const announced: Array<[string, string]> = [];
    const first = await assemble(config, logger(), { announcePassword: (user, password) => announced.push([user, password]) });
    assert.equal(announced.length, 1);
    const [username, password] = announced[0]!;
    assert.equal(username, 'admin');
    assert.ok(password.length >= 20);
    assert.ok(!logged.includes(password), 'the generated password is not in the log');
    assert.match(logged, /created the first admin account/);

    const keyFile = path.join(root, 'auth', 'token-signing-key.pem');
    assert.equal((await fs.stat(keyFile)).mode & 0o777, 0o600);
    const token = (await getToken(first.app, ['repository:a/b:pull'], { username, password })).token;
    await first.close();

    // Second start over the same storage: no new admin, no new password, same key.
    const second = await assemble(config, logger(), { announcePassword: () => assert.fail('announced twice') });
    try {
      assert.equal((await second.auth!.store.listUsers()).length, 1);
      const res = await request(second.app).get('/v2/').set('Authorization', bearer(token));
      assert.equal(res.status, 200, 'a token from before the restart still verifies');
      assert.equal(headerOf((await getToken(second.app, [], { username, password })).token).kid, headerOf(token).kid);
    } finally {
      await second.close();
    }
  });

  it('uses REGISTRY_ADMIN_PASSWORD when given', async () => {
    const otherRoot = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-first-start-'));
    try {
      const config = loadConfig({ file: SHIPPED, env: { REGISTRY_STORAGE_ROOT: otherRoot, REGISTRY_ADMIN_PASSWORD: 'chosen-password-1', REGISTRY_LOG_LEVEL: 'silent' } });
      const assembled = await assemble(config, undefined, { announcePassword: () => assert.fail('nothing to announce') });
      try {
        await getToken(assembled.app, [], { username: 'admin', password: 'chosen-password-1' });
      } finally {
        await assembled.close();
      }
    } finally {
      await fs.rm(otherRoot, { recursive: true, force: true });
    }
  });
});

describe('auth mode none', () => {
  it('serves everyone, has no token endpoint or account API', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-open-'));
    const assembled = await assemble(validateConfig({ storage: { root }, log: { level: 'silent' }, auth: { mode: 'none' } }));
    try {
      assert.equal(assembled.auth, undefined);
      assert.equal((await request(assembled.app).get('/v2/')).status, 200);
      assert.equal((await request(assembled.app).get('/v2/_catalog')).status, 200);
      assert.equal((await request(assembled.app).get('/auth/token')).status, 404);
      assert.equal((await request(assembled.app).get('/api/v1/users').set('Authorization', basic('admin', 'x'))).status, 404);
    } finally {
      await assembled.close();
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});
