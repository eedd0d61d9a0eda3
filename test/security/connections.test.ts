/**
 * Connections a hostile client opens against the real server (issue 11, items 8 and 15): an
 * unauthenticated upload declaring a huge body and sending a byte now and then gets its 401
 * and the connection is closed instead of drained forever; an upload body that stops arriving
 * is aborted after http.bodyIdleTimeoutSeconds; an unknown method gets the spec's JSON error.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { validateConfig } from '../../src/config/load.js';
import { startRegistry, type RunningRegistry } from '../../src/server.js';
import { ADMIN, basic } from '../auth/helpers.js';
import { waitFor } from '../webhooks/support.js';

/**
 * A raw connection that, like a hostile client, ignores the server's FIN (allowHalfOpen) and
 * keeps its side open. `gone()` tells whether the server has let go of it entirely: after its
 * FIN, one more byte written gets a reset once the server's socket is destroyed.
 */
class RawConnection {
  readonly socket: net.Socket;
  received = '';
  closed = false;
  private ended = false;

  constructor(port: number) {
    this.socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (text: string) => (this.received += text));
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => (this.closed = true));
  }

  gone(): boolean {
    if (this.ended && !this.closed) this.socket.write('.');
    return this.closed;
  }

  write(text: string): boolean {
    return !this.closed && this.socket.write(text);
  }

  /** The first answer's status, headers and body, once all of it has arrived. */
  async answer(): Promise<{ status: number; headers: Record<string, string>; body: string }> {
    return waitFor(() => parseAnswer(this.received), 'an answer', 15_000);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function parseAnswer(text: string): { status: number; headers: Record<string, string>; body: string } | null {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
  const length = Number(headers['content-length'] ?? 0);
  const body = text.slice(end + 4);
  if (body.length < length) return null;
  return { status: Number(statusLine!.split(' ')[1]), headers, body: body.slice(0, length) };
}

describe('hostile connections against the running registry', () => {
  let root: string;
  let running: RunningRegistry;
  let port: number;
  const logLines: string[] = [];
  const open: RawConnection[] = [];
  const connect = () => {
    const connection = new RawConnection(port);
    open.push(connection);
    return connection;
  };

  before(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'registry-connections-'));
    const config = validateConfig({
      http: { addr: '127.0.0.1:0', bodyIdleTimeoutSeconds: 2 },
      storage: { root },
      log: { level: 'info' },
      auth: { mode: 'token', adminPassword: ADMIN.password },
    });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    });
    running = await startRegistry(config, pino({ level: 'info' }, sink));
    port = Number(new URL(running.url).port);
  });
  after(async () => {
    for (const connection of open) connection.destroy();
    await running.close({ deadlineMs: 0 });
    await fs.rm(root, { recursive: true, force: true });
  });

  it('an unauthenticated PATCH declaring 1 GB gets 401, then its connection is closed though it keeps sending', async () => {
    const connections = Array.from({ length: 3 }, () => connect());
    for (const connection of connections) {
      connection.write('PATCH /v2/team/app/blobs/uploads/0f4e1c52-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000000\r\n\r\nx');
    }
    const drip = setInterval(() => {
      for (const connection of connections) connection.write('x');
    }, 200);
    try {
      for (const connection of connections) {
        const answer = await connection.answer();
        assert.equal(answer.status, 401);
        assert.equal(answer.headers.connection, 'close');
        assert.equal(JSON.parse(answer.body).errors[0].code, 'UNAUTHORIZED');
      }
      await waitFor(() => connections.every((connection) => connection.gone()), 'the server to close all three connections', 15_000);
    } finally {
      clearInterval(drip);
    }
  });

  it('an answer to a request without a body keeps the connection alive', async () => {
    const connection = connect();
    connection.write('GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const answer = await connection.answer();
    assert.equal(answer.status, 401);
    assert.notEqual(answer.headers.connection, 'close');
    connection.received = '';
    connection.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.equal((await connection.answer()).status, 200, 'a second request on the same connection');
  });

  it('an upload body that stops arriving is aborted after bodyIdleTimeoutSeconds; one that keeps sending is not', async () => {
    const authorization = basic(ADMIN.username, ADMIN.password);
    const start = await fetch(`${running.url}/v2/team/app/blobs/uploads/`, { method: 'POST', headers: { Authorization: authorization } });
    assert.equal(start.status, 202);
    const location = start.headers.get('location')!;

    const steady = connect();
    steady.write(`PATCH ${location} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${authorization}\r\nContent-Type: application/octet-stream\r\nContent-Length: 24\r\n\r\n`);
    // 24 bytes over ~4.8 s, one every 200 ms: never idle for the 2 s the setting allows.
    for (let i = 0; i < 24; i++) {
      assert.ok(!steady.closed, `still open after ${i} bytes`);
      steady.write('s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const accepted = await steady.answer();
    assert.equal(accepted.status, 202, accepted.body);
    assert.equal(accepted.headers.range, '0-23');

    const stalled = connect();
    stalled.write(`PATCH ${accepted.headers.location} HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${authorization}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\nten bytes.`);
    await waitFor(() => stalled.gone(), 'the server to abort the stalled body', 20_000);
    assert.ok(logLines.some((line) => line.includes('request body idle too long')), 'the abort is logged');
  });

  it('an unknown method gets the spec’s JSON error, not Node’s bare 400', async () => {
    const connection = connect();
    connection.write('FOO /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n');
    const answer = await connection.answer();
    assert.equal(answer.status, 501);
    assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
    assert.equal(answer.headers['docker-distribution-api-version'], 'registry/2.0');
    const body = JSON.parse(answer.body) as { errors: Array<{ code: string; message: string; detail: unknown }> };
    assert.equal(body.errors[0]!.code, 'UNSUPPORTED');
    assert.match(body.errors[0]!.message, /FOO/);
    assert.deepEqual(body.errors[0]!.detail, { method: 'FOO' });
    await waitFor(() => connection.gone(), 'the connection to close');

    const oversized = connect();
    oversized.write(`GET /v2/ HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'a'.repeat(70_000)}\r\n\r\n`);
    const tooLarge = await oversized.answer();
    assert.equal(tooLarge.status, 431);
    assert.equal(JSON.parse(tooLarge.body).errors[0].code, 'INVALID_REQUEST');
  });
});
