/**
 * Data files are private to the registry's user whatever the umask (issue 11, item 7): with
 * umask 000 the storage root and its folders come out 0700, the database, its WAL and SHM,
 * blobs and uploads 0600. An existing root others can read is warned about at start-up, and an
 * existing world-readable database is narrowed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { ADMIN, basic, pushImageAs } from '../auth/helpers.js';

async function modeOf(file: string): Promise<string> {
  return ((await fs.stat(file)).mode & 0o777).toString(8).padStart(4, '0');
}

function openAt(root: string, lines: string[]): Promise<AssembledRegistry> {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const config = validateConfig({ storage: { root }, log: { level: 'info' }, auth: { mode: 'token', adminPassword: ADMIN.password } });
  return assemble(config, pino({ level: 'info' }, sink), { announcePassword: () => undefined });
}

describe('file modes under umask 000', () => {
  let previousUmask: number;
  let parent: string;
  before(async () => {
    parent = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-modes-'));
    // This test file runs in its own process (node --test), so the umask change stays here.
    previousUmask = process.umask(0o000);
  });
  after(async () => {
    process.umask(previousUmask);
    await fs.rm(parent, { recursive: true, force: true });
  });

  it('creates the root 0700 and the database, WAL, SHM, blobs and uploads 0600', async (t) => {
    const root = path.join(parent, 'fresh', 'storage');
    const lines: string[] = [];
    const registry = await openAt(root, lines);
    t.after(() => registry.close());

    const authorization = basic(ADMIN.username, ADMIN.password);
    const pushed = await pushImageAs(registry.app, 'team/app', 'v1', authorization);
    assert.equal(pushed.status, 201);
    const upload = await request(registry.app).post('/v2/team/app/blobs/uploads/').set('Authorization', authorization);
    assert.equal(upload.status, 202);
    const uploadId = String(upload.headers.location).split('/').pop()!;

    const hex = pushed.layerDigest.slice('sha256:'.length);
    const expected: Record<string, string> = {
      '.': '0700',
      blobs: '0700',
      uploads: '0700',
      imports: '0700',
      auth: '0700',
      'registry.db': '0600',
      'registry.db-wal': '0600',
      'registry.db-shm': '0600',
      'auth/token-signing-key.pem': '0600',
      [`blobs/sha256/${hex.slice(0, 2)}`]: '0700',
      [`blobs/sha256/${hex.slice(0, 2)}/${hex}`]: '0600',
      [`uploads/${uploadId}`]: '0600',
    };
    const actual: Record<string, string> = {};
    for (const name of Object.keys(expected)) actual[name] = await modeOf(path.join(root, name));
    assert.deepEqual(actual, expected);
    assert.ok(!lines.some((line) => line.includes('readable by other users')), 'a root it created itself is not warned about');
  });

  it('narrows an empty root it is about to fill (a fresh volume’s mount point)', async (t) => {
    const root = path.join(parent, 'volume');
    await fs.mkdir(root, { mode: 0o755 });
    const lines: string[] = [];
    const registry = await openAt(root, lines);
    t.after(() => registry.close());
    assert.equal(await modeOf(root), '0700');
    assert.ok(!lines.some((line) => line.includes('readable by other users')));
  });

  it('warns at start-up about a root in use that others can read, and narrows its database', async (t) => {
    const root = path.join(parent, 'existing');
    await fs.mkdir(path.join(root, 'blobs'), { recursive: true, mode: 0o755 });
    await fs.writeFile(path.join(root, 'registry.db'), '', { mode: 0o644 });
    const lines: string[] = [];
    const registry = await openAt(root, lines);
    t.after(() => registry.close());

    const warning = lines.map((line) => JSON.parse(line) as { level: number; msg: string; root?: string }).find((entry) => entry.msg.includes('readable by other users'));
    assert.ok(warning, `a warning in ${lines.join('\n')}`);
    assert.equal(warning.level, 40);
    assert.equal(warning.root, root);
    assert.match(warning.msg, /chmod 700/);
    assert.equal(await modeOf(root), '0755', 'the operator’s own folder is left as it is');
    assert.equal(await modeOf(path.join(root, 'registry.db')), '0640', 'the database is no longer world-readable');
    assert.equal(await modeOf(path.join(root, 'registry.db-wal')), '0640', 'its WAL follows');
  });
});
