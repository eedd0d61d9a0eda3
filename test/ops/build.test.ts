/**
 * `npm start` builds first (prestart: npm run build); a restart with nothing changed must not pay
 * for a whole TypeScript compile again. The build is `tsc -b` over tsconfig.build.json, which is
 * incremental with its build info inside dist/ (so deleting dist/ means a full build). Here the
 * same configuration builds into a temporary folder: once in full, then again with nothing
 * changed (tsc reports the project up to date and writes nothing), and again after a source was
 * saved unchanged (compared by content: still no compile).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../helpers/server-process.js';
import { run } from '../helpers/tools.js';

const TSC = path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

describe('the build behind npm start', () => {
  let work: string;
  let config: string;
  const build = () => run(process.execPath, [TSC, '-b', config, '--verbose'], { cwd: PROJECT_ROOT, timeoutMs: 300_000 });

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'build-test-'));
    config = path.join(work, 'tsconfig.json');
    // tsconfig.build.json as it is, built elsewhere: only where the output goes (and, from a
    // folder outside the project, where type packages are found) differs.
    await fs.writeFile(
      config,
      JSON.stringify({
        extends: path.join(PROJECT_ROOT, 'tsconfig.build.json'),
        compilerOptions: {
          outDir: path.join(work, 'dist'),
          tsBuildInfoFile: path.join(work, 'dist', '.tsbuildinfo'),
          typeRoots: [path.join(PROJECT_ROOT, 'node_modules', '@types')],
        },
      }),
    );
  });
  after(() => fs.rm(work, { recursive: true, force: true }));

  it('npm run build is tsc -b over an incremental tsconfig.build.json whose build info lives in dist/', async () => {
    const { scripts } = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.match(scripts.build ?? '', /^tsc -b tsconfig\.build\.json( && |$)/);
    assert.equal(scripts.prestart, 'npm run build');
    const { compilerOptions } = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { incremental?: boolean; outDir: string; tsBuildInfoFile?: string };
    };
    assert.equal(compilerOptions.incremental, true);
    assert.equal(path.dirname(compilerOptions.tsBuildInfoFile ?? ''), compilerOptions.outDir);
  });

  it('builds once, then finds nothing to do while no source changed', async () => {
    const first = await build();
    assert.match(first.stdout, /Building project/);
    const main = path.join(work, 'dist', 'main.js');
    const builtAt = (await fs.stat(main)).mtimeMs;

    const again = await build();
    assert.match(again.stdout, /is up to date/);
    assert.doesNotMatch(again.stdout, /Building project/);
    assert.equal((await fs.stat(main)).mtimeMs, builtAt, 'nothing was written');

    // A source saved again without a change (a checkout, an editor) is compared by content: no compile.
    const source = path.join(PROJECT_ROOT, 'src', 'version.ts');
    const later = new Date(Date.now() + 2_000);
    const { atime, mtime } = await fs.stat(source);
    await fs.utimes(source, later, later);
    try {
      const touched = await build();
      assert.match(touched.stdout, /is up to date but needs to update timestamps/);
      assert.doesNotMatch(touched.stdout, /Building project/);
    } finally {
      await fs.utimes(source, atime, mtime);
    }
  });
});
