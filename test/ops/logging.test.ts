/**
 * The request log: one JSON line per request with request id, method, route, repository,
 * status, bytes in and out, duration and account; never a credential; probes logged at debug.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import request from 'supertest';
import { pushBlob, sendChunked } from '../helpers/app.js';
import { ADMIN_PASSWORD, basic, createOpsApp } from './support.js';

type LogRecord = Record<string, unknown>;

function requestLines(records: LogRecord[]): LogRecord[] {
  return records.filter((record) => record.msg === 'request');
}

describe('request log', () => {
  it('writes one line per request with the fields operators need', async () => {
    const ops = await createOpsApp();
    try {
      const content = Buffer.from('some layer bytes for the log test');
      await pushBlob(ops.app, 'team/app', content);
      await request(ops.app).get('/v2/team/app/blobs/sha256:' + '0'.repeat(64)).set('X-Request-Id', 'req-42');
      const chunked = await sendChunked(ops.app, { method: 'POST', path: '/v2/team/app/blobs/uploads/' }, []);
      assert.equal(chunked.status, 202);
      const lines = requestLines(ops.logRecords());
      assert.equal(lines.length, 3, JSON.stringify(lines));

      const [push, missing] = lines as [LogRecord, LogRecord];
      assert.equal(push.method, 'POST');
      assert.equal(push.route, 'upload_start');
      assert.equal(push.repository, 'team/app');
      assert.equal(push.status, 201);
      assert.equal(push.bytesIn, content.length);
      assert.ok(typeof push.bytesOut === 'number' && push.bytesOut > 0, 'bytes written, headers included');
      assert.ok(typeof push.durationMs === 'number' && push.durationMs >= 0);
      assert.equal(push.account, 'anonymous');
      assert.equal(typeof push.reqId, 'string');
      assert.equal(push.level, 30, 'info');

      assert.equal(missing.reqId, 'req-42');
      assert.equal(missing.route, 'blob');
      assert.equal(missing.status, 404);
      assert.equal(missing.method, 'GET');
    } finally {
      await ops.dispose();
    }
  });

  it('names the account, and never logs passwords, tokens or query strings', async () => {
    const ops = await createOpsApp({ auth: { mode: 'token', adminPassword: ADMIN_PASSWORD } });
    try {
      const token = await request(ops.app).get('/auth/token?service=harbormaster-registry&scope=registry:catalog:*').set('Authorization', basic('admin', ADMIN_PASSWORD));
      assert.equal(token.status, 200, token.text);
      const bearer = String(token.body.token);
      const res = await request(ops.app).get('/v2/_catalog?n=5&secret=query-secret-value').set('Authorization', `Bearer ${bearer}`);
      assert.equal(res.status, 200);
      await request(ops.app).get('/v2/').set('Authorization', basic('admin', 'a-wrong-password-value'));

      const text = ops.logText();
      for (const secret of [ADMIN_PASSWORD, bearer, 'query-secret-value', 'a-wrong-password-value', Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')]) {
        assert.ok(!text.includes(secret), `the log must not contain ${secret.slice(0, 12)}…`);
      }
      const catalog = requestLines(ops.logRecords()).find((line) => line.route === 'catalog');
      assert.equal(catalog?.account, 'admin');
      assert.equal(catalog?.status, 200);
    } finally {
      await ops.dispose();
    }
  });

  it('logs probes and scrapes at debug only, and nothing per request above info', async () => {
    const quiet = await createOpsApp();
    const warnOnly = await createOpsApp({ log: { level: 'warn' } });
    try {
      await request(quiet.app).get('/healthz');
      await request(quiet.app).get('/metrics');
      await request(quiet.app).get('/v2/');
      assert.deepEqual(
        requestLines(quiet.logRecords()).map((line) => line.route),
        ['base'],
      );
      await request(warnOnly.app).get('/v2/');
      assert.equal(requestLines(warnOnly.logRecords()).length, 0);
    } finally {
      await quiet.dispose();
      await warnOnly.dispose();
    }
  });
});
