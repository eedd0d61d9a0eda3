/**
 * The registry's name and version, read once from package.json (which sits one folder above
 * both src/ and the compiled dist/), for `registry --version`, the `Server` header and logs.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

function readPackage(): { name: string; version: string } {
  try {
    const text = fs.readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8');
    const parsed = JSON.parse(text) as { name?: unknown; version?: unknown };
    return {
      name: typeof parsed.name === 'string' ? parsed.name : 'harbormaster-registry',
      version: typeof parsed.version === 'string' ? parsed.version : '0.0.0',
    };
  } catch {
    return { name: 'harbormaster-registry', version: '0.0.0' };
  }
}

const pkg = readPackage();

export const PRODUCT_NAME = pkg.name;
export const VERSION = pkg.version;
/** The `Server` response header: `harbormaster-registry/0.1.0`. */
export const SERVER_HEADER = `${PRODUCT_NAME}/${VERSION}`;
