#!/usr/bin/env node
// Launcher of the deploy agent: runs src/agent/main.ts through tsx (so it works straight after
// `npm install`), or the compiled dist/agent/main.js when the sources are not shipped.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'src', 'agent', 'main.ts');
const compiled = path.join(root, 'dist', 'agent', 'main.js');

if (fs.existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(compiled).href);
}
