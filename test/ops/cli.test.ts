/**
 * The admin CLI as a real process: `--help` for every command, webhook management end to end,
 * and exit status 2 with a clear message on bad input (1 when the registry refuses).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../helpers/cli.js';

const cli = runCli;

describe('registry CLI', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ops-cli-'));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('answers --help for every command', async () => {
    const top = await cli(root, ['--help']);
    assert.equal(top.code, 0);
    const commands = ['serve', 'user', 'robot', 'grant', 'tag', 'config', 'webhook', 'import', 'export', 'gc', 'fsck', 'usage', 'migrate', 'migrate-blobs', 'migrate-metadata'];
    for (const command of commands) assert.match(top.stdout, new RegExp(`^  ${command}\\b`, 'm'), `${command} listed`);
    for (const args of [['config', 'check'], ['config', 'schema'], ['tag', 'list'], ['tag', 'delete'], ['webhook', 'add'], ['webhook', 'deliveries'], ['import'], ['export'], ['migrate-blobs'], ['migrate-metadata']]) {
      const help = await cli(root, [...args, '--help']);
      assert.equal(help.code, 0, args.join(' '));
      assert.match(help.stdout, new RegExp(`^Usage: registry ${args.join(' ')}`, 'm'));
    }
  });

  it('manages webhook subscriptions without a running server', async () => {
    const added = await cli(root, ['webhook', 'add', '--id', 'deploy', '--url', 'http://127.0.0.1:9/hook', '--event', 'tag.created,tag.updated', '--repository', 'team/*', '--tag', 'semver:stable', '--header', 'X-Token: abc', '--secret-stdin'], 'a-shared-secret-of-enough-length\n');
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /^created deploy {2}active {2}native/m);
    assert.doesNotMatch(added.stdout, /a-shared-secret/, 'a secret given on stdin is not echoed');

    const generated = await cli(root, ['webhook', 'add', '--url', 'https://hooks.example.com/x', '--json']);
    assert.equal(generated.code, 0, generated.stderr);
    const created = JSON.parse(generated.stdout) as { id: string; secret: string };
    assert.ok(created.secret.length >= 16, 'a generated secret is shown once');

    const list = await cli(root, ['webhook', 'list']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^deploy .*events=tag\.created,tag\.updated {2}repositories=team\/\* {2}tags=semver:stable$/m);
    assert.ok(!list.stdout.includes(created.secret), 'listings never show secrets');

    const paused = await cli(root, ['webhook', 'update', 'deploy', '--paused']);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /deploy {2}paused/);
    const shown = JSON.parse((await cli(root, ['webhook', 'show', 'deploy'])).stdout) as { active: boolean; headers: Record<string, string> };
    assert.equal(shown.active, false);
    assert.deepEqual(shown.headers, { 'X-Token': '***' }, 'header values are write-only');

    const ping = await cli(root, ['webhook', 'ping', 'deploy']);
    assert.equal(ping.code, 1, 'nothing listens on port 9: the ping fails');
    assert.match(ping.stdout, /^#\d+ {2}failed {2}ping/m);
    const deliveries = await cli(root, ['webhook', 'deliveries', 'deploy', '--state', 'failed']);
    assert.equal(deliveries.code, 0);
    assert.match(deliveries.stdout, /failed {2}ping/);
    // Times in ISO 8601, as everywhere else (and as the admin API shows them), not milliseconds.
    const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
    const [listed] = JSON.parse((await cli(root, ['webhook', 'deliveries', 'deploy', '--json'])).stdout) as Array<Record<string, string>>;
    for (const field of ['createdAt', 'updatedAt', 'expiresAt']) assert.match(listed![field]!, ISO, field);
    const one = JSON.parse((await cli(root, ['webhook', 'delivery', 'deploy', String(listed!.id), '--json'])).stdout) as { createdAt: string; log: Array<{ at: string }> };
    assert.match(one.createdAt, ISO);
    assert.match(one.log[0]!.at, ISO);
    const failed = JSON.parse((await cli(root, ['webhook', 'failed', '--json'])).stdout) as Array<Record<string, string>>;
    assert.match(failed[0]!.updatedAt!, ISO);

    const deleted = await cli(root, ['webhook', 'delete', 'deploy']);
    assert.equal(deleted.code, 0);
    const gone = await cli(root, ['webhook', 'show', 'deploy']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no webhook subscription deploy/);
  });

  it('exits 2 with a message on bad input', async () => {
    const badUrl = await cli(root, ['webhook', 'add', '--url', 'ftp://example.com/']);
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /url: must be an http\(s\) URL/);
    const badEvent = await cli(root, ['webhook', 'add', '--url', 'http://127.0.0.1:9/', '--event', 'tag.exploded']);
    assert.equal(badEvent.code, 2);
    assert.match(badEvent.stderr, /events/);
    const badState = await cli(root, ['webhook', 'deliveries', 'x', '--state', 'lost']);
    assert.equal(badState.code, 2);
    assert.match(badState.stderr, /--state must be pending, delivered or failed/);
    const noUrl = await cli(root, ['webhook', 'add']);
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /required option '--url <url>' not specified/);
    const missingFile = await cli(root, ['import', path.join(root, 'absent.tar'), '--repository', 'a/b', '--tag', '1']);
    assert.equal(missingFile.code, 2);
    assert.match(missingFile.stderr, /absent\.tar is not a readable file/);
    const notArchive = path.join(root, 'text.tar');
    await fs.writeFile(notArchive, 'hello');
    const notTar = await cli(root, ['import', notArchive, '--repository', 'a/b', '--tag', '1']);
    assert.equal(notTar.code, 2);
    assert.match(notTar.stderr, /not a readable tar archive|neither index\.json/);
    const badRef = await cli(root, ['export', 'no-tag-here', '--output', path.join(root, 'x.tar')]);
    assert.equal(badRef.code, 2);
    assert.match(badRef.stderr, /expected <repository>:<tag> or <repository>@<digest>/);
    const unknownCommand = await cli(root, ['frobnicate']);
    assert.equal(unknownCommand.code, 2);
    assert.match(unknownCommand.stderr, /unknown command 'frobnicate'/);
  });
});
