/**
 * An app with token auth on, over a temporary storage root, with a controllable clock and a
 * captured log, plus the token dance as clients perform it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import request from 'supertest';
import type { AuthConfig } from '../../src/auth/config.js';
import { AccountManager, type GrantInput } from '../../src/auth/management.js';
import type { AuthService } from '../../src/auth/service.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { assemble } from '../../src/server.js';

export const ADMIN_PASSWORD = 'admin-password-for-tests';

/** A clock tests move by hand (epoch ms). */
export class TestClock {
  constructor(public ms = Date.UTC(2030, 0, 1)) {}
  now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export type App = Awaited<ReturnType<typeof assemble>>['app'];

export interface AuthTestApp {
  app: App;
  auth: AuthService;
  accounts: AccountManager;
  clock: TestClock;
  root: string;
  /** Every log line written so far, raw. */
  logText(): string;
  /** Parsed log records. */
  logRecords(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function createAuthApp(auth: Partial<ConfigInput['auth']> & Record<string, unknown> = {}, extra: Omit<ConfigInput, 'auth' | 'storage' | 'log'> = {}): Promise<AuthTestApp> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-auth-test-'));
  const clock = new TestClock();
  let logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logged += chunk.toString('utf8');
      callback();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const config = validateConfig({
    ...extra,
    storage: { root },
    log: { level: 'info' },
    auth: { mode: 'token', adminPassword: ADMIN_PASSWORD, ...auth } as AuthConfig,
  });
  const assembled = await assemble(config, logger, { now: clock.now, announcePassword: () => assert.fail('no password should be generated') });
  assert.ok(assembled.auth, 'auth service is assembled in token mode');
  return {
    app: assembled.app,
    auth: assembled.auth,
    accounts: new AccountManager(assembled.auth.store, clock.now),
    clock,
    root,
    logText: () => logged,
    logRecords: () =>
      logged
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    async close() {
      await assembled.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
}

export function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/** Parses `Bearer realm="…",service="…",scope="…",error="…"`. */
export function parseChallenge(header: string | undefined): Record<string, string> {
  assert.ok(header, 'a WWW-Authenticate header');
  const match = /^Bearer (.*)$/.exec(header);
  assert.ok(match, `a Bearer challenge: ${header}`);
  const params: Record<string, string> = {};
  for (const [, key, value] of match[1]!.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) params[key!] = value!.replace(/\\(.)/g, '$1');
  return params;
}

/** The token endpoint path of a challenge's realm (supertest talks to the app, not the URL's host). */
export function realmPath(realm: string): string {
  return new URL(realm).pathname;
}

/** GET /auth/token as docker's Basic flow does; asserts 200 and returns the body. */
export async function getToken(
  app: App,
  scopes: string[],
  credentials?: { username: string; password: string },
  extraQuery: Record<string, string> = {},
): Promise<{ token: string; access_token: string; expires_in: number; issued_at: string; refresh_token?: string }> {
  const query = new URLSearchParams({ service: 'harbormaster-registry', ...extraQuery });
  for (const scope of scopes) query.append('scope', scope);
  let req = request(app).get(`/auth/token?${query.toString()}`);
  if (credentials) req = req.set('Authorization', basic(credentials.username, credentials.password));
  const res = await req;
  assert.equal(res.status, 200, `token request: ${res.status} ${res.text}`);
  return res.body as { token: string; access_token: string; expires_in: number; issued_at: string; refresh_token?: string };
}

/** Decodes a JWT's payload without verifying it (to inspect claims). */
export function claimsOf(token: string): Record<string, unknown> & { access: Array<{ type: string; name: string; actions: string[] }> } {
  const payload = token.split('.')[1]!;
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown> & {
    access: Array<{ type: string; name: string; actions: string[] }>;
  };
}

export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Creates a user with the given grants; returns its credentials. */
export async function addUser(
  t: AuthTestApp,
  name: string,
  grants: GrantInput[],
  role: 'user' | 'admin' = 'user',
): Promise<{ username: string; password: string }> {
  const password = `${name}-password-123`;
  await t.accounts.createUser({ name, password, role, grants });
  return { username: name, password };
}

export const ADMIN = { username: 'admin', password: ADMIN_PASSWORD };

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/**
 * Pushes a tiny image (config, one layer, manifest tagged `tag`) with the given Authorization
 * header; returns the statuses of each step so tests can assert refusals too.
 */
export async function pushImageAs(
  app: App,
  name: string,
  tag: string,
  authorization: string,
): Promise<{ status: number; manifestDigest: string; layerDigest: string }> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed: `${name}:${tag}` }));
  const layer = Buffer.from(`layer of ${name}:${tag}`);
  for (const blob of [config, layer]) {
    const res = await request(app)
      .post(`/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`)
      .set('Authorization', authorization)
      .set('Content-Type', 'application/octet-stream')
      .send(blob);
    if (res.status !== 201) return { status: res.status, manifestDigest: '', layerDigest: sha256(layer) };
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  const res = await request(app)
    .put(`/v2/${name}/manifests/${tag}`)
    .set('Authorization', authorization)
    .set('Content-Type', 'application/vnd.oci.image.manifest.v1+json')
    .send(manifest.toString('utf8'));
  return { status: res.status, manifestDigest: sha256(manifest), layerDigest: sha256(layer) };
}

/** A Bearer header for the admin with the given scopes. */
export async function adminBearer(app: App, scopes: string[]): Promise<string> {
  return bearer((await getToken(app, scopes, ADMIN)).token);
}
