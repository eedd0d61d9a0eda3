/**
 * Builds the web interface (src/ui, Preact + TypeScript) into dist/ui: one bundled, minified
 * script and stylesheet under assets/ with their content hash in the file name (served with a
 * one-year immutable cache), and index.html naming them (served with no-cache). `npm run build`
 * runs it after compiling the server; tests call {@link buildUi} into a temporary folder.
 *
 *   node dist/build-ui.js [outDir]
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

/** The project folder: one above both src/ and dist/. */
const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const UI_SOURCES = path.join(PROJECT_ROOT, 'src', 'ui');
export const DEFAULT_UI_OUT = path.join(PROJECT_ROOT, 'dist', 'ui');

export interface BuiltUi {
  outDir: string;
  /** Asset paths as the page names them (/ui/assets/app-<hash>.js …). */
  script: string;
  stylesheet: string;
}

export async function buildUi(outDir: string = DEFAULT_UI_OUT): Promise<BuiltUi> {
  const assets = path.join(outDir, 'assets');
  await fs.rm(outDir, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: { app: path.join(UI_SOURCES, 'main.tsx') },
    bundle: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    entryNames: '[name]-[hash]',
    outdir: assets,
    metafile: true,
    logLevel: 'warning',
    legalComments: 'linked',
  });
  const outputs = Object.keys(result.metafile.outputs).map((file) => `/ui/assets/${path.basename(file)}`);
  const script = outputs.find((file) => file.endsWith('.js'));
  const stylesheet = outputs.find((file) => file.endsWith('.css'));
  if (!script || !stylesheet) throw new Error(`the UI build produced no script or stylesheet: ${outputs.join(', ')}`);
  const template = await fs.readFile(path.join(UI_SOURCES, 'index.html'), 'utf8');
  await fs.writeFile(path.join(outDir, 'index.html'), template.replace('%SCRIPT%', script).replace('%STYLESHEET%', stylesheet));
  return { outDir, script, stylesheet };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const built = await buildUi(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`web interface built into ${built.outDir}: ${built.script}, ${built.stylesheet}`);
}
