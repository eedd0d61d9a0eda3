/**
 * Serving the web interface: / redirects to /ui/, every page path gets index.html (no-cache),
 * hashed assets a year's immutable cache, everything the strict CSP; an unbuilt interface is a
 * clear 503; `ui.enabled: false` serves none of it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { validateConfig } from '../../src/config/load.js';
import { assemble, type AssembledRegistry } from '../../src/server.js';
import { assertError } from '../helpers/app.js';

describe('web interface serving', () => {
  let root: string;
  const opened: AssembledRegistry[] = [];
  const open = async (ui: Record<string, unknown>) => {
    const assembled = await assemble(validateConfig({ storage: { root: path.join(root, `storage-${opened.length}`) }, auth: { mode: 'none' }, log: { level: 'silent' }, ui }));
    opened.push(assembled);
    return assembled.app;
  };

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-ui-serving-'));
    await fs.mkdir(path.join(root, 'built', 'assets'), { recursive: true });
    await fs.writeFile(path.join(root, 'built', 'index.html'), '<!doctype html><script type="module" src="/ui/assets/app-ABC123.js"></script>');
    await fs.writeFile(path.join(root, 'built', 'assets', 'app-ABC123.js'), 'console.log(1)');
  });

  after(async () => {
    for (const assembled of opened) await assembled.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('redirects / and /ui to /ui/, and answers every page path with index.html', async () => {
    const app = await open({ assetsDir: path.join(root, 'built') });
    const home = await request(app).get('/').expect(302);
    assert.equal(home.headers.location, '/ui/');
    assert.equal((await request(app).get('/ui').expect(301)).headers.location, '/ui/');
    for (const page of ['/ui/', '/ui/repository?name=team/app', '/ui/image?repository=a&reference=1.0']) {
      const res = await request(app).get(page).expect(200);
      assert.match(res.text, /app-ABC123\.js/);
      assert.equal(res.headers['cache-control'], 'no-cache');
      assert.match(res.headers['content-security-policy']!, /^default-src 'none'; script-src 'self'; style-src 'self'/);
      assert.doesNotMatch(res.headers['content-security-policy']!, /unsafe/);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    }
  });

  it('serves hashed assets with a long immutable cache, and a clear 404 for others', async () => {
    const app = await open({ assetsDir: path.join(root, 'built') });
    const asset = await request(app).get('/ui/assets/app-ABC123.js').expect(200);
    assert.equal(asset.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.match(asset.headers['content-type']!, /javascript/);
    assert.match(asset.headers['content-security-policy']!, /default-src 'none'/);
    assertError(await request(app).get('/ui/assets/app-OTHER.js'), 404, 'NOT_FOUND');
    assertError(await request(app).get('/ui/assets/../index.html'), 404, 'NOT_FOUND');
  });

  it('answers 503 naming the build step when the interface was never built', async () => {
    const app = await open({ assetsDir: path.join(root, 'missing') });
    const res = await request(app).get('/ui/');
    assertError(res, 503, 'UNSUPPORTED');
    assert.match(res.body.errors[0].message, /npm run build/);
  });

  it('serves none of it with ui.enabled false', async () => {
    const app = await open({ enabled: false, assetsDir: path.join(root, 'built') });
    assertError(await request(app).get('/'), 404, 'NOT_FOUND');
    assertError(await request(app).get('/ui/'), 404, 'NOT_FOUND');
    await request(app).get('/v2/').expect(200);
  });
});
