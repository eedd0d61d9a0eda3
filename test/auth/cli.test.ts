/**
 * The admin CLI (bin/registry.js → src/cli/main.ts through tsx), run as a real process on a
 * temporary storage root: users, robots, grants, exit codes, --help, and `serve`.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { assemble } from '../../src/server.js';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { basic, claimsOf, getToken } from './helpers.js';

const BIN = path.join(PROJECT_ROOT, 'bin', 'registry.js');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('REGISTRY_')) env[name] = value;
  return { ...env, ...extra };
}

function cli(root: string, args: string[], stdin?: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: PROJECT_ROOT, env: cleanEnv({ REGISTRY_STORAGE_ROOT: root }), timeout: 60_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (stdin !== undefined) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}

/** `registry serve` on a storage root and a free loopback port, read as it prints. */
function serve(root: string) {
  const child = spawn(process.execPath, [BIN, 'serve'], {
    cwd: PROJECT_ROOT,
    env: cleanEnv({ REGISTRY_STORAGE_ROOT: root, REGISTRY_HTTP_ADDR: '127.0.0.1:0' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const printed = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (text: string) => (printed.stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (printed.stderr += text));
  return {
    /** Resolves with what `found` makes of the stream once it finds something (within 30 s). */
    waitFor<T>(stream: 'stdout' | 'stderr', found: (text: string) => T | undefined): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          const result = found(printed[stream]);
          if (result === undefined) return;
          clearTimeout(timer);
          child[stream].off('data', check);
          child.off('exit', exited);
          resolve(result);
        };
        const exited = (code: number | null) => {
          clearTimeout(timer);
          reject(new Error(`serve exited with ${code}: ${printed.stdout}${printed.stderr}`));
        };
        const timer = setTimeout(() => reject(new Error(`not found in serve's ${stream}: ${printed[stream]}`)), 30_000);
        child[stream].on('data', check);
        child.once('exit', exited);
        check();
      });
    },
    async stop(): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('admin CLI', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-cli-'));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('adds users (generated password printed once, or from stdin) and lists them', async () => {
    const generated = await cli(root, ['user', 'add', 'alice', '--grant', 'team/*:pull,push', '--grant', 'docs/**:pull']);
    assert.equal(generated.code, 0, generated.stderr);
    const password = /^password: (\S+)$/m.exec(generated.stdout)?.[1];
    assert.ok(password, generated.stdout);

    const fromStdin = await cli(root, ['user', 'add', 'boss', '--admin', '--password-stdin'], 'boss-password-1\n');
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.doesNotMatch(fromStdin.stdout, /password:/);

    const list = await cli(root, ['user', 'list', '--json']);
    assert.equal(list.code, 0);
    const users = JSON.parse(list.stdout) as Array<{ name: string; role: string; grants: Array<{ pattern: string; actions: string[] }> }>;
    assert.deepEqual(
      users.map((user) => [user.name, user.role, user.grants]),
      [
        ['alice', 'user', [{ pattern: 'docs/**', actions: ['pull'] }, { pattern: 'team/*', actions: ['pull', 'push'] }]],
        ['boss', 'admin', []],
      ],
    );

    // The registry over the same storage accepts both, with exactly those grants.
    const assembled = await assemble(validateConfig({ storage: { root }, log: { level: 'silent' }, auth: { mode: 'token' } }));
    try {
      const token = (await getToken(assembled.app, ['repository:team/app:pull,push,delete'], { username: 'alice', password })).token;
      assert.deepEqual(claimsOf(token).access, [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
      assert.equal((await request(assembled.app).get('/api/v1/users').set('Authorization', basic('boss', 'boss-password-1'))).status, 200);
    } finally {
      await assembled.close();
    }
  });

  it('changes passwords', async () => {
    const changed = await cli(root, ['user', 'passwd', 'boss', '--password-stdin'], 'boss-password-2\n');
    assert.equal(changed.code, 0, changed.stderr);
    const short = await cli(root, ['user', 'passwd', 'boss', '--password-stdin'], 'short\n');
    assert.equal(short.code, 2);
    assert.match(short.stderr, /password must be/);
  });

  it('adds robots (secret printed once), lists, grants and revokes them', async () => {
    const added = await cli(root, ['robot', 'add', 'ci', '--grant', 'ci/*:pull,push', '--expires', '30d', '--description', 'builds', '--json']);
    assert.equal(added.code, 0, added.stderr);
    const robot = JSON.parse(added.stdout) as { login: string; secret: string; status: string; expiresAt: string };
    assert.equal(robot.login, 'robot+ci');
    assert.equal(robot.status, 'active');
    assert.ok(robot.secret.length >= 40);
    assert.ok(Date.parse(robot.expiresAt) > Date.now() + 29 * 86_400_000);

    assert.equal((await cli(root, ['grant', 'add', 'robot+ci', 'tools/**', 'pull']).then((r) => r.code)), 0);
    const grants = await cli(root, ['grant', 'list', 'robot+ci']);
    assert.equal(grants.stdout, 'ci/*\tpull,push\ntools/**\tpull\n');
    assert.equal((await cli(root, ['grant', 'remove', 'robot+ci', 'tools/**'])).code, 0);
    assert.equal((await cli(root, ['grant', 'list', 'robot+ci'])).stdout, 'ci/*\tpull,push\n');

    const list = await cli(root, ['robot', 'list']);
    assert.match(list.stdout, /^ci\tactive\t/m);
    assert.ok(!list.stdout.includes(robot.secret));

    const assembled = await assemble(validateConfig({ storage: { root }, log: { level: 'silent' }, auth: { mode: 'token' } }));
    try {
      assert.equal((await request(assembled.app).get('/v2/').set('Authorization', basic('robot+ci', robot.secret))).status, 200);
      assert.equal((await cli(root, ['robot', 'revoke', 'ci'])).code, 0);
      assert.equal((await request(assembled.app).get('/v2/').set('Authorization', basic('robot+ci', robot.secret))).status, 401);
    } finally {
      await assembled.close();
    }
  });

  it('fails clearly, with a non-zero exit, on bad input', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['user', 'add', 'Bad Name'], 2, /user name must be/],
      [['user', 'add', 'alice'], 1, /already exists/],
      [['user', 'delete', 'nobody'], 1, /no user "nobody"/],
      [['user', 'delete', 'boss'], 1, /last admin/],
      [['robot', 'add', 'nogrant'], 2, /required option '--grant/],
      [['robot', 'add', 'x', '--grant', 'no-actions'], 2, /pattern:actions/],
      [['robot', 'add', 'x', '--grant', 'ci/*:own'], 2, /actions must be/],
      [['robot', 'add', 'x', '--grant', 'ci/*:pull', '--expires', 'someday'], 2, /expiry must be/],
      [['robot', 'revoke', 'ci'], 1, /already revoked/],
      [['grant', 'add', 'alice', 'Bad//pattern', 'pull'], 2, /invalid repository pattern/],
      [['grant', 'remove', 'alice', 'nothing/*'], 1, /has no grant/],
      [['bogus'], 2, /unknown command/],
    ];
    for (const [args, code, message] of cases) {
      const result = await cli(root, args);
      assert.equal(result.code, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
  });

  it('has --help on every command', async () => {
    for (const args of [[], ['user'], ['user', 'add'], ['user', 'passwd'], ['robot', 'add'], ['grant', 'add'], ['serve']]) {
      const result = await cli(root, [...args, '--help']);
      assert.equal(result.code, 0, args.join(' '));
      assert.match(result.stdout, /^Usage: registry/m, args.join(' '));
    }
  });

  it("the first start's banner shows a password command that runs as printed, from the checkout", async () => {
    const fresh = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-banner-'));
    const server = serve(fresh);
    try {
      const banner = await server.waitFor('stderr', (text) => (/={10,}\n[\s\S]*={10,}\n/.test(text) ? text : undefined));
      const command = /change it.*:\n {3}(.+)\n/.exec(banner)?.[1];
      assert.equal(command, 'npx registry user passwd admin', banner);
      // Typed as shown, in a shell at the top of the checkout, with the same storage root.
      const ran = await new Promise<Result>((resolve) => {
        execFile('sh', ['-c', command], { cwd: PROJECT_ROOT, env: cleanEnv({ REGISTRY_STORAGE_ROOT: fresh }), timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
        );
      });
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^password of admin changed$/m);
    } finally {
      await server.stop();
      await fs.rm(fresh, { recursive: true, force: true });
    }
  });

  it('serve starts the registry with token auth', async () => {
    const server = serve(root);
    try {
      const url = await server.waitFor('stdout', (text) => {
        const line = text.split('\n').find((entry) => entry.includes('"registry listening"'));
        return line ? (JSON.parse(line) as { url: string }).url : undefined;
      });
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token"/);
    } finally {
      await server.stop();
    }
  });
});
