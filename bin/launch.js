// Shared by the package's commands: runs a TypeScript entry point through tsx, so the command
// works straight after `npm install` without a build, or its compiled twin in dist/ when the
// sources are not shipped (the container image).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `entry` relative to src/ without extension, e.g. 'cli/main'. */
export async function launch(entry) {
  const source = path.join(root, 'src', `${entry}.ts`);
  if (fs.existsSync(source)) {
    const { register } = await import('tsx/esm/api');
    register();
    await import(pathToFileURL(source).href);
  } else {
    await import(pathToFileURL(path.join(root, 'dist', `${entry}.js`)).href);
  }
}
