/**
 * bin/launch.js, the commands' launcher: sources through tsx where both are there, else the
 * compiled dist/ (the container image has no sources; a production install has no tsx, which
 * is a dev dependency), else a message saying what to run.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../helpers/server-process.js';

describe('bin/launch.js', () => {
  let work: string;
  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'launch-'));
  });
  after(async () => {
    await fs.rm(work, { recursive: true, force: true });
  });

  /** A package folder with the real launcher, an entry `tool/main` in src/ and/or dist/, and maybe tsx. */
  async function packageWith(name: string, parts: { source?: boolean; compiled?: boolean; tsx?: boolean }): Promise<string> {
    const root = path.join(work, name);
    await fs.mkdir(path.join(root, 'bin'), { recursive: true });
    await fs.writeFile(path.join(root, 'package.json'), JSON.stringify({ type: 'module' }));
    await fs.copyFile(path.join(PROJECT_ROOT, 'bin', 'launch.js'), path.join(root, 'bin', 'launch.js'));
    await fs.writeFile(path.join(root, 'bin', 'tool.js'), "import { launch } from './launch.js';\nawait launch('tool/main');\n");
    if (parts.source) {
      await fs.mkdir(path.join(root, 'src', 'tool'), { recursive: true });
      // Type annotations: only runs through tsx.
      await fs.writeFile(path.join(root, 'src', 'tool', 'main.ts'), "const from: string = 'source';\nconsole.log(from);\n");
    }
    if (parts.compiled) {
      await fs.mkdir(path.join(root, 'dist', 'tool'), { recursive: true });
      await fs.writeFile(path.join(root, 'dist', 'tool', 'main.js'), "console.log('compiled');\n");
    }
    if (parts.tsx) {
      await fs.mkdir(path.join(root, 'node_modules'));
      await fs.symlink(path.join(PROJECT_ROOT, 'node_modules', 'tsx'), path.join(root, 'node_modules', 'tsx'));
    }
    return root;
  }

  function runTool(root: string): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [path.join(root, 'bin', 'tool.js')], { cwd: root, timeout: 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
      });
    });
  }

  it('runs the sources through tsx when both are installed', async () => {
    const result = await runTool(await packageWith('checkout', { source: true, compiled: true, tsx: true }));
    assert.equal(result.stdout.trim(), 'source', result.stderr);
  });

  it('runs dist/ when tsx is not installed, although the sources are there', async () => {
    const result = await runTool(await packageWith('production', { source: true, compiled: true }));
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'compiled');
  });

  it('runs dist/ when the sources are not shipped (the image)', async () => {
    const result = await runTool(await packageWith('image', { compiled: true }));
    assert.equal(result.stdout.trim(), 'compiled', result.stderr);
  });

  it('says what to run when there is neither tsx nor dist/', async () => {
    const result = await runTool(await packageWith('bare', { source: true }));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /neither dist\/tool\/main\.js nor tsx is installed here: run `npm install`.*`npm run build`/);
  });
});
