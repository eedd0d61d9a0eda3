/**
 * End-to-end graceful shutdown of the registry process: a SIGTERM in the middle of a slow layer
 * upload stops new connections at once, lets the upload finish (201, durable after a restart)
 * and then exits 0; a second signal exits at once; the deadline cuts a request that never ends.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { seededBytes } from '../helpers/oci-layout.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function exitOf(server: ServerProcess): Promise<Exit> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    return Promise.resolve({ code: server.child.exitCode, signal: server.child.signalCode });
  }
  return new Promise((resolve) => server.child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Waits (bounded) for a condition; fails the test if it never holds. */
async function waitFor(check: () => boolean | Promise<boolean>, what: string, attempts = 400): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function bounded<T>(promise: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

async function startUpload(server: ServerProcess, repository: string): Promise<{ location: string; id: string }> {
  const res = await fetch(`${server.url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202);
  const location = res.headers.get('location')!;
  return { location, id: location.split('/').pop()! };
}

/** A chunked PUT that completes an upload, sent as slowly as the test likes. */
function slowPut(server: ServerProcess, location: string, digest: string) {
  const { hostname, port } = new URL(server.url);
  const agent = new http.Agent({ keepAlive: false });
  const req = http.request({ host: hostname, port: Number(port), method: 'PUT', path: `${location}?digest=${digest}`, agent, headers: { 'Content-Type': 'application/octet-stream' } });
  const response = new Promise<{ status: number; headers: http.IncomingHttpHeaders } | { error: Error }>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', (error) => resolve({ error }));
  });
  return { req, response };
}

describe('graceful shutdown of the registry process', () => {
  let root: string;
  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'ops-shutdown-'));
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('SIGTERM during an upload: no new connections, the upload finishes, exit 0, the blob survives a restart', async () => {
    const server = await startServer({ root, env: { REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS: '60' } });
    try {
      const layer = seededBytes('shutdown-layer', 512 * 1024);
      const digest = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
      const { location, id } = await startUpload(server, 'slow/app');
      const { req, response } = slowPut(server, location, digest);
      req.write(layer.subarray(0, 256 * 1024));
      const uploadFile = path.join(root, 'uploads', id);
      await waitFor(async () => ((await fs.stat(uploadFile).catch(() => null))?.size ?? 0) >= 256 * 1024, 'the first half to reach the server');

      server.child.kill('SIGTERM');
      await waitFor(() => /"msg":"shutting down"/.test(server.output()), 'the shutdown log line');
      await waitFor(() => refusesConnections(server.url), 'the listener to close');
      assert.equal(server.child.exitCode, null, 'still running while the upload is in flight');

      req.end(layer.subarray(256 * 1024));
      const result = await bounded(response, 'the upload response');
      assert.ok(!('error' in result), `upload failed: ${'error' in result ? result.error.message : ''}`);
      assert.equal(result.status, 201);
      assert.equal(result.headers['docker-content-digest'], digest);

      const exit = await bounded(exitOf(server), 'the process to exit');
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.match(server.output(), /"msg":"waiting for requests in flight to finish"/);
      assert.doesNotMatch(server.output(), /shutdown deadline reached/);
      // The last line says the shutdown finished (and how long it took), not just that it began.
      const lines = server.output().trim().split('\n');
      assert.match(lines[lines.length - 1]!, /"signal":"SIGTERM","durationMs":\d+,"msg":"shutdown complete"/);
    } finally {
      await server.kill();
    }

    const again = await startServer({ root });
    try {
      const layerDigest = `sha256:${createHash('sha256').update(seededBytes('shutdown-layer', 512 * 1024)).digest('hex')}`;
      const res = await fetch(`${again.url}/v2/slow/app/blobs/${layerDigest}`);
      assert.equal(res.status, 200);
      const body = Buffer.from(await res.arrayBuffer());
      assert.ok(body.equals(seededBytes('shutdown-layer', 512 * 1024)), 'the acknowledged blob is intact after the restart');
    } finally {
      await again.stop();
    }
  });

  it('a second signal exits at once, cutting the upload', async () => {
    const server = await startServer({ root, env: { REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS: '300' } });
    try {
      const { location, id } = await startUpload(server, 'cut/app');
      const { req, response } = slowPut(server, location, `sha256:${'0'.repeat(64)}`);
      req.write(Buffer.alloc(64 * 1024, 1));
      await waitFor(async () => ((await fs.stat(path.join(root, 'uploads', id)).catch(() => null))?.size ?? 0) > 0, 'bytes to reach the server');
      server.child.kill('SIGTERM');
      await waitFor(() => /"msg":"shutting down"/.test(server.output()), 'the shutdown log line');
      server.child.kill('SIGINT');
      const exit = await bounded(exitOf(server), 'the process to exit on the second signal');
      assert.deepEqual(exit, { code: 1, signal: null });
      assert.match(server.output(), /second signal: exiting at once/);
      const result = await bounded(response, 'the cut request to fail');
      assert.ok('error' in result, 'the upload in flight was cut');
    } finally {
      await server.kill();
    }
  });

  it('the deadline cuts a request that never finishes, then the process exits 0', async () => {
    const server = await startServer({ root, env: { REGISTRY_HTTP_SHUTDOWN_TIMEOUT_SECONDS: '1' } });
    try {
      const { location, id } = await startUpload(server, 'stalled/app');
      const { req, response } = slowPut(server, location, `sha256:${'0'.repeat(64)}`);
      req.write(Buffer.alloc(1024, 2));
      await waitFor(async () => ((await fs.stat(path.join(root, 'uploads', id)).catch(() => null))?.size ?? 0) > 0, 'bytes to reach the server');
      server.child.kill('SIGTERM');
      const exit = await bounded(exitOf(server), 'the process to exit after its deadline');
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.match(server.output(), /shutdown deadline reached/);
      assert.ok('error' in (await bounded(response, 'the stalled request to be cut')));
    } finally {
      await server.kill();
    }
  });
});
