/** `GET /v2/`: the version check every client starts with. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createTestApp, type TestApp } from '../helpers/app.js';

describe('GET /v2/', () => {
  let t: TestApp;
  before(async () => {
    t = await createTestApp();
  });
  after(() => t.close());

  it('answers 200 with Docker-Distribution-API-Version registry/2.0 and a JSON body', async () => {
    const res = await request(t.app).get('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(res.body, {});
  });

  it('answers /v2 without the trailing slash the same way', async () => {
    const res = await request(t.app).get('/v2');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('answers HEAD /v2/ with 200 and the version header', async () => {
    const res = await request(t.app).head('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });

  it('sets the version header on error responses too', async () => {
    const res = await request(t.app).get('/v2/no/such/endpoint');
    assert.equal(res.status, 404);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
  });
});
