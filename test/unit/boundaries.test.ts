/**
 * The layout's one hard rule: a driver library is imported only inside its backend's folder,
 * so a second backend slots in without touching the domain, HTTP or the services.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(import.meta.dirname, '../../src');
const DRIVERS: Record<string, string> = {
  'better-sqlite3': 'metadata/sqlite/',
  pg: 'metadata/postgres/',
  '@aws-sdk/': 'storage/s3/',
  // The S3 driver's own transport for pulls (object-copy.ts).
  'http-parser-js': 'storage/s3/',
};

function* sourceFiles(dir: string): Generator<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(full);
    else if (entry.name.endsWith('.ts')) yield full;
  }
}

test('driver libraries are imported only inside their backend folder', () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const relative = path.relative(SRC, file).split(path.sep).join('/');
    const text = fs.readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from\s+|import\(\s*)'([^']+)'/g)) {
      const specifier = match[1] ?? '';
      for (const [library, folder] of Object.entries(DRIVERS)) {
        const imports = library.endsWith('/') ? specifier.startsWith(library) : specifier === library || specifier.startsWith(`${library}/`);
        if (imports && !relative.startsWith(folder)) offenders.push(`${relative} imports ${specifier}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
});
