// Shared by the package's commands: runs a TypeScript entry point through tsx, so the command
// works straight after `npm install` without a build, or its compiled twin in dist/ when the
// sources are not shipped (the container image) or tsx is not installed (tsx is a dev
// dependency: `npm install --omit=dev` after `npm run build` runs dist/).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** `entry` relative to src/ without extension, e.g. 'cli/main'. */
export async function launch(entry) {
  const source = path.join(root, 'src', `${entry}.ts`);
  const compiled = path.join(root, 'dist', `${entry}.js`);
  const tsx = fs.existsSync(source) ? await loadTsx() : null;
  if (tsx) {
    tsx.register();
    await import(pathToFileURL(source).href);
  } else if (fs.existsSync(compiled)) {
    await import(pathToFileURL(compiled).href);
  } else {
    process.stderr.write(
      `${path.basename(process.argv[1] ?? 'registry')}: neither ${path.relative(root, compiled)} nor tsx is installed here: ` +
        `run \`npm install\` (to run the sources) or \`npm run build\` (to compile them) in ${root}\n`,
    );
    process.exit(1);
  }
}

async function loadTsx() {
  try {
    return await import('tsx/esm/api');
  } catch (error) {
    if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes("'tsx'")) return null;
    throw error;
  }
}
