/**
 * The read-only window of a move (docs/migrate.md) as the real process runs it: started with
 * REGISTRY_STORAGE_READ_ONLY=true over a registry whose outbox holds an event not yet delivered,
 * it serves the pull, refuses the push with 405, and does not deliver the event (the database is
 * being copied; the replicas will send it). Started again without it, it delivers the event.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { MEDIA, pushBlob, pushManifest } from '../helpers/app.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';
import { createTestRegistry, startListener, waitFor, type Listener } from '../webhooks/support.js';

describe('a registry started read-only', () => {
  let root: string;
  let listener: Listener;
  let server: ServerProcess | undefined;
  const env = { REGISTRY_WEBHOOKS_POLL_INTERVAL_MS: '20' };

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'read-only-window-'));
    listener = await startListener();
    // The event is recorded with the push, but this registry's dispatcher never runs.
    const registry = await createTestRegistry({ root, start: false });
    const created = await request(registry.app).post('/api/v1/webhooks').send({ url: `${listener.url}/hook`, events: ['tag.created'] });
    assert.equal(created.status, 201, created.text);
    const config = await pushBlob(registry.app, 'team/app', '{}', MEDIA.ociConfig);
    const layer = await pushBlob(registry.app, 'team/app', 'layer');
    await pushManifest(registry.app, 'team/app', 'v1', { schemaVersion: 2, mediaType: MEDIA.ociManifest, config, layers: [layer] });
    await registry.dispose();
  });
  after(async () => {
    await server?.stop();
    await listener?.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('serves pulls, refuses pushes and delivers nothing; once writable again it delivers', async () => {
    server = await startServer({ root, env: { ...env, REGISTRY_STORAGE_READ_ONLY: 'true' } });
    assert.match(server.output(), /read-only \(storage\.readOnly\)/);
    const pulled = await fetch(`${server.url}/v2/team/app/manifests/v1`, { headers: { Accept: MEDIA.ociManifest } });
    assert.equal(pulled.status, 200);
    const pushed = await fetch(`${server.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(pushed.status, 405);
    assert.equal(((await pushed.json()) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNSUPPORTED');
    // Long enough for dozens of dispatcher polls, had it been started.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.equal(listener.received.length, 0, 'no delivery while read-only');
    await server.stop();

    server = await startServer({ root, env });
    await waitFor(() => listener.received.some((r) => r.json?.tag === 'v1'), 'the delivery once writable');
  });
});
