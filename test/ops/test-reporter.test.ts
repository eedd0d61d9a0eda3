/**
 * `npm test` off a terminal (CI) must stay readable: node:test's default there is TAP (about
 * 4,000 lines for this suite, failures buried in them). The test script asks for the spec
 * reporter, which lists the tests and repeats every failure with its details at the end. Here a
 * throwaway test file with one failure runs through the runner exactly as `npm test` starts it,
 * with its output piped.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { CommandError, run } from '../helpers/tools.js';

/** The runner's arguments in the test script: `node <these> $(find test …)`. */
async function runnerArguments(): Promise<string[]> {
  const { scripts } = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: { test: string } };
  const match = /(?:^|&& )node (.+?) \$\(find /.exec(scripts.test);
  assert.ok(match, `cannot find the node:test command in ${scripts.test}`);
  return match[1]!.split(' ');
}

describe('npm test output off a terminal', () => {
  let work: string;
  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'reporter-test-'));
  });
  after(() => fs.rm(work, { recursive: true, force: true }));

  it('lists tests as spec and repeats each failure, with its message and location, at the end', async () => {
    const file = path.join(work, 'sample.test.mjs');
    await fs.writeFile(
      file,
      [
        "import assert from 'node:assert/strict';",
        "import { it } from 'node:test';",
        "it('passes', () => {});",
        "it('fails on purpose', () => assert.equal(1 + 1, 3, 'the sum the sample expects'));",
        "it('passes again', () => {});",
      ].join('\n'),
    );
    // Run as from a shell: this file's own runner marks its children (NODE_TEST_CONTEXT), and a
    // runner that sees the mark reports to a parent instead of printing.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const failed = await run(process.execPath, [...(await runnerArguments()), file], { cwd: PROJECT_ROOT, env, timeoutMs: 60_000 }).then(
      () => assert.fail('the failing sample passed'),
      (error: unknown) => (error instanceof CommandError ? error : assert.fail(String(error))),
    );
    const output = failed.stdout;
    assert.doesNotMatch(output, /^TAP version/m, 'not TAP');
    assert.match(output, /^✔ passes \(/m);
    assert.match(output, /^ℹ fail 1$/m);
    const summary = output.slice(output.indexOf('ℹ fail 1'));
    assert.match(summary, /✖ failing tests:/, 'the failures are repeated after the totals');
    assert.match(summary, /✖ fails on purpose/);
    assert.match(summary, /the sum the sample expects/);
    assert.match(summary, /sample\.test\.mjs:4/);
  });
});
