#!/usr/bin/env node
// The `registry` command: runs the TypeScript CLI (src/cli/main.ts) through tsx, so it works
// straight after `npm install` without a build step, or the compiled dist/cli/main.js when the
// sources are not shipped (the container image).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'src', 'cli', 'main.ts');
const compiled = path.join(root, 'dist', 'cli', 'main.js');

if (fs.existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(compiled).href);
}
