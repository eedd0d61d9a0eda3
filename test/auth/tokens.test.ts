/**
 * Tokens: the libtrust `kid`, signing, and every way a token must be refused (expired,
 * tampered, wrongly signed, `alg: none`, HMAC with the public key, wrong audience or issuer),
 * key rotation, external issuers, and the same refusals over HTTP.
 */
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { keyId, loadOrCreateSigningKey, loadSigningKey, type SigningKey } from '../../src/auth/keys.js';
import { TokenError, TokenService } from '../../src/auth/tokens.js';
import { ADMIN, bearer, createAuthApp, getToken, parseChallenge, TestClock, type AuthTestApp } from './helpers.js';

const ACCESS = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];

function makeKey(kind: 'ec' | 'rsa' = 'ec'): SigningKey {
  const { privateKey } = kind === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicKey = createPublicKey(privateKey);
  return { kid: keyId(publicKey), algorithm: kind === 'ec' ? 'ES256' : 'RS256', publicKey, privateKey };
}

function service(key: SigningKey, clock: TestClock, options: { extraKeys?: SigningKey[]; audience?: string; issuer?: string } = {}): TokenService {
  return new TokenService({
    service: options.audience ?? 'registry.test',
    ttlSeconds: 300,
    leewaySeconds: 30,
    signing: { issuer: options.issuer ?? 'issuer.test', key },
    trusted: [{ issuer: options.issuer ?? 'issuer.test', keys: [key, ...(options.extraKeys ?? [])], origin: 'local' }],
    now: clock.now,
  });
}

function refusal(tokens: TokenService, token: string): string {
  try {
    tokens.verify(token);
  } catch (error) {
    assert.ok(error instanceof TokenError, `a TokenError, got ${String(error)}`);
    return error.reason;
  }
  assert.fail('the token was accepted');
}

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('kid', () => {
  it('matches the libtrust fingerprint of jwt.md’s example key', () => {
    const publicKey = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: 'm7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q', y: 'dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc' },
      format: 'jwk',
    });
    assert.equal(keyId(publicKey), 'PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6');
  });
});

describe('signing keys', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-keys-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('generates the key once, owner-only, and loads the same key afterwards', async () => {
    const file = path.join(dir, 'auth', 'key.pem');
    const first = loadOrCreateSigningKey(file, 'ES256');
    assert.equal(first.created, true);
    assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
    assert.equal((await fs.stat(path.dirname(file))).mode & 0o777, 0o700);
    const second = loadOrCreateSigningKey(file, 'ES256');
    assert.equal(second.created, false);
    assert.equal(second.key.kid, first.key.kid);
  });

  it('generates RS256 keys and refuses unsupported key types', async () => {
    const rsa = loadOrCreateSigningKey(path.join(dir, 'rsa.pem'), 'RS256');
    assert.equal(rsa.key.algorithm, 'RS256');
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    await fs.writeFile(path.join(dir, 'ed.pem'), ed);
    assert.throws(() => loadSigningKey(path.join(dir, 'ed.pem')), /unsupported token key/);
  });
});

describe('token verification', () => {
  const clock = new TestClock();
  const key = makeKey();
  const tokens = service(key, clock);

  it('accepts its own token and returns subject and access', () => {
    const { token } = tokens.issue('alice', ACCESS);
    const verified = tokens.verify(token);
    assert.equal(verified.subject, 'alice');
    assert.deepEqual(verified.access, ACCESS);
    assert.equal(verified.origin, 'local');
  });

  it('refuses an expired token, honouring the clock-skew leeway', () => {
    const { token } = tokens.issue('alice', ACCESS);
    clock.advance(300 + 20);
    assert.equal(tokens.verify(token).subject, 'alice', 'within the 30 s leeway');
    clock.advance(20);
    assert.equal(refusal(tokens, token), 'token expired');
    clock.advance(-340);
  });

  it('refuses a token not valid yet (nbf beyond the leeway)', () => {
    const { token } = tokens.issue('alice', ACCESS);
    clock.advance(-60);
    assert.equal(refusal(tokens, token), 'token not yet valid');
    clock.advance(60);
  });

  it('refuses a tampered token (claims changed after signing)', () => {
    const { token } = tokens.issue('alice', ACCESS);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    claims.access = [{ type: 'repository', name: 'prod/app', actions: ['pull', 'push'] }];
    assert.match(refusal(tokens, `${header}.${b64(claims)}.${signature}`), /invalid signature/);
  });

  it('refuses a token signed by an untrusted key, even with a trusted kid', () => {
    const stranger = makeKey();
    const forged = jwt.sign({ iss: 'issuer.test', sub: 'alice', aud: 'registry.test', exp: Math.floor(clock.ms / 1000) + 60, access: ACCESS }, stranger.privateKey, {
      algorithm: 'ES256',
      keyid: key.kid,
    });
    assert.match(refusal(tokens, forged), /invalid signature/);
    const unknownKid = jwt.sign({ iss: 'issuer.test', sub: 'alice', aud: 'registry.test', exp: Math.floor(clock.ms / 1000) + 60 }, stranger.privateKey, {
      algorithm: 'ES256',
      keyid: stranger.kid,
    });
    assert.match(refusal(tokens, unknownKid), /untrusted key/);
  });

  it('refuses alg: none', () => {
    const claims = { iss: 'issuer.test', sub: 'admin', aud: 'registry.test', exp: Math.floor(clock.ms / 1000) + 60, access: ACCESS };
    const unsigned = `${b64({ alg: 'none', typ: 'JWT', kid: key.kid })}.${b64(claims)}.`;
    assert.match(refusal(tokens, unsigned), /algorithm none does not match/);
  });

  it('refuses HS256 signed with the public key as the HMAC secret', () => {
    const claims = { iss: 'issuer.test', sub: 'admin', aud: 'registry.test', exp: Math.floor(clock.ms / 1000) + 60, access: ACCESS };
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const signingInput = `${b64({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64(claims)}`;
    const forged = `${signingInput}.${createHmac('sha256', pem).update(signingInput).digest('base64url')}`;
    assert.match(refusal(tokens, forged), /algorithm HS256 does not match/);
  });

  it('refuses a token whose alg header names another asymmetric algorithm than its key', () => {
    const claims = { iss: 'issuer.test', sub: 'admin', aud: 'registry.test', exp: Math.floor(clock.ms / 1000) + 60 };
    const token = jwt.sign(claims, key.privateKey, { algorithm: 'ES384' as jwt.Algorithm, keyid: key.kid, allowInvalidAsymmetricKeyTypes: true } as jwt.SignOptions);
    assert.match(refusal(tokens, token), /does not match/);
  });

  it('refuses a token for another audience (service)', () => {
    const other = service(key, clock, { audience: 'other-registry' });
    assert.match(refusal(tokens, other.issue('alice', ACCESS).token), /jwt audience invalid/);
  });

  it('refuses a token from another issuer signed with a trusted key', () => {
    const other = service(key, clock, { issuer: 'someone-else' });
    assert.match(refusal(tokens, other.issue('alice', ACCESS).token), /jwt issuer invalid/);
  });

  it('refuses a token without exp', () => {
    const token = jwt.sign({ iss: 'issuer.test', sub: 'alice', aud: 'registry.test', iat: Math.floor(clock.ms / 1000) }, key.privateKey, { algorithm: 'ES256', keyid: key.kid });
    assert.equal(refusal(tokens, token), 'token claims are malformed');
  });

  it('refuses garbage', () => {
    assert.equal(refusal(tokens, 'not-a-jwt'), 'malformed token');
  });

  it('trusts several keys at once for rotation (old key verifies, new key signs)', () => {
    const oldKey = makeKey('rsa');
    const before = service(oldKey, clock);
    const oldToken = before.issue('alice', ACCESS).token;
    const rotated = service(key, clock, { extraKeys: [oldKey] });
    assert.equal(rotated.verify(oldToken).subject, 'alice');
    assert.equal(rotated.verify(rotated.issue('bob', ACCESS).token).subject, 'bob');
    // Once the old key is dropped from the trusted set its tokens stop working.
    assert.match(refusal(tokens, oldToken), /untrusted key/);
  });

  it('verifies tokens of an external issuer and issues none itself', () => {
    const external = makeKey();
    const issuerSide = service(external, clock, { issuer: 'auth.example.com' });
    const registrySide = new TokenService({
      service: 'registry.test',
      ttlSeconds: 300,
      leewaySeconds: 30,
      trusted: [{ issuer: 'auth.example.com', keys: [{ kid: external.kid, algorithm: external.algorithm, publicKey: external.publicKey }], origin: 'external' }],
      now: clock.now,
    });
    const verified = registrySide.verify(issuerSide.issue('someone', ACCESS).token);
    assert.equal(verified.origin, 'external');
    assert.equal(registrySide.issuing, false);
    assert.throws(() => registrySide.issue('x', []), /does not issue tokens/);
  });
});

describe('token refusals over HTTP', () => {
  let t: AuthTestApp;
  before(async () => {
    t = await createAuthApp();
  });
  after(() => t.close());

  it('answers 401 invalid_token for expired, tampered, alg:none and wrong-audience tokens', async () => {
    const good = (await getToken(t.app, ['repository:team/app:pull'], ADMIN)).token;
    const ok = await request(t.app).get('/v2/team/app/tags/list').set('Authorization', bearer(good));
    assert.equal(ok.status, 404, 'valid token: the repository simply does not exist');

    const [header, payload, signature] = good.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const tampered = `${header}.${b64({ ...claims, sub: 'someone-else' })}.${signature}`;
    const none = `${b64({ alg: 'none', typ: 'JWT', kid: JSON.parse(Buffer.from(header, 'base64url').toString('utf8')).kid })}.${payload}.`;
    const stranger = makeKey();
    const wrongKey = jwt.sign({ ...claims }, stranger.privateKey, { algorithm: 'ES256', keyid: stranger.kid });
    const wrongAudience = jwt.sign({ ...claims, aud: 'another-registry' }, stranger.privateKey, { algorithm: 'ES256', keyid: stranger.kid });
    for (const [label, token] of [
      ['tampered', tampered],
      ['alg none', none],
      ['wrong key', wrongKey],
      ['wrong audience', wrongAudience],
    ] as const) {
      const res = await request(t.app).get('/v2/team/app/tags/list').set('Authorization', bearer(token));
      assert.equal(res.status, 401, label);
      const challenge = parseChallenge(res.headers['www-authenticate']);
      assert.equal(challenge.error, 'invalid_token', label);
      assert.equal(challenge.scope, 'repository:team/app:pull', label);
    }

    t.clock.advance(300 + 31);
    const expired = await request(t.app).get('/v2/team/app/tags/list').set('Authorization', bearer(good));
    assert.equal(expired.status, 401);
    assert.equal(parseChallenge(expired.headers['www-authenticate']).error, 'invalid_token');
    t.clock.advance(-(300 + 31));

    const reasons = t
      .logRecords()
      .filter((record) => record.audit === 'authentication-failed')
      .map((record) => String(record.reason));
    assert.ok(reasons.some((reason) => /invalid signature/.test(reason)));
    assert.ok(reasons.some((reason) => /untrusted key/.test(reason)));
    assert.ok(reasons.includes('token expired'));
  });

  it('the wrong-audience token from a trusted key is refused too', async () => {
    // Same signing key, other service name: build a second app over the same storage root.
    const good = (await getToken(t.app, ['repository:team/app:pull'], ADMIN)).token;
    const claims = JSON.parse(Buffer.from(good.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const key = loadSigningKey(path.join(t.root, 'auth', 'token-signing-key.pem'));
    const otherAudience = jwt.sign({ ...claims, aud: 'another-registry' }, key.privateKey, { algorithm: 'ES256', keyid: key.kid });
    const res = await request(t.app).get('/v2/team/app/tags/list').set('Authorization', bearer(otherAudience));
    assert.equal(res.status, 401);
    assert.equal(parseChallenge(res.headers['www-authenticate']).error, 'invalid_token');
    const sameAudience = jwt.sign({ ...claims }, key.privateKey, { algorithm: 'ES256', keyid: key.kid });
    assert.equal((await request(t.app).get('/v2/team/app/tags/list').set('Authorization', bearer(sameAudience))).status, 404);
  });
});
