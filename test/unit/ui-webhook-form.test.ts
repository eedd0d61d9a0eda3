/**
 * The web interface's subscription form offers what the API accepts: the UI bundle cannot
 * import the server's lists (it is type-checked without Node's types), so this keeps the two
 * from drifting apart.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { SUBSCRIBABLE_EVENT_TYPES, WEBHOOK_FORMATS } from '../../src/webhooks/types.js';

const PAGE = path.join(import.meta.dirname, '..', '..', 'src', 'ui', 'pages', 'webhooks.tsx');

function listIn(source: string, name: string): string[] {
  const match = new RegExp(`const ${name} = \\[([^\\]]*)\\]`).exec(source);
  assert.ok(match, `${name} is a literal list in ${PAGE}`);
  return [...match[1]!.matchAll(/'([^']+)'/g)].map((m) => m[1]!);
}

test('the subscription form lists every format and event type the API accepts', async () => {
  const source = await fs.readFile(PAGE, 'utf8');
  assert.deepEqual(listIn(source, 'FORMATS').sort(), [...WEBHOOK_FORMATS].sort());
  assert.deepEqual(listIn(source, 'EVENT_TYPES').sort(), [...SUBSCRIBABLE_EVENT_TYPES].sort());
});
