/**
 * Pull events name the repository and reference the route served (issue 11, item 11):
 * `GET /v2/alice%2Fapp/manifests/v1` is served as alice/app, so its event says alice/app (a
 * subscription filtering on alice/app sees it: pull auditing cannot be dodged by encoding the
 * slash), and `manifests/sha256%3A…` is reported as a digest, not a tag. Request logs label it
 * the same way.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { classifyPath } from '../../src/observability/routes.js';
import { MEDIA, pushImage } from '../helpers/app.js';
import { createTestRegistry, startListener, waitFor, type Listener, type TestRegistry } from '../webhooks/support.js';

describe('pull events of percent-encoded paths', () => {
  let registry: TestRegistry;
  let listener: Listener;
  before(async () => {
    listener = await startListener();
    registry = await createTestRegistry();
    await registry.webhooks.createSubscription({ url: `${listener.url}/pulls`, secret: 'a-secret-for-pull-events', events: ['manifest.pulled'], repositories: ['alice/app'] });
  });
  after(async () => {
    await registry.dispose();
    await listener.close();
  });

  const pulls = () => listener.received.filter((entry) => entry.json?.type === 'manifest.pulled');

  it('alice%2Fapp is pulled, and reported, as alice/app', async () => {
    const image = await pushImage(registry.app, 'alice/app', 'v1');
    const res = await request(registry.app).get('/v2/alice%2Fapp/manifests/v1').set('Accept', MEDIA.ociManifest);
    assert.equal(res.status, 200);
    const [pull] = await waitFor(() => pulls().length === 1 && pulls(), 'the pull event of the encoded path');
    assert.equal(pull!.json.repository, 'alice/app');
    assert.equal(pull!.json.tag, 'v1');
    assert.equal(pull!.json.digest, image.digest);
    assert.match(pull!.json.reference, /\/alice\/app:v1@sha256:/);

    const byDigest = await request(registry.app).get(`/v2/alice%2Fapp/manifests/${image.digest.replace(':', '%3A')}`).set('Accept', MEDIA.ociManifest);
    assert.equal(byDigest.status, 200);
    const [, second] = await waitFor(() => pulls().length === 2 && pulls(), 'the pull event by encoded digest');
    assert.equal(second!.json.repository, 'alice/app');
    assert.equal(second!.json.tag, null, 'a digest is not reported as a tag');
    assert.equal(second!.json.digest, image.digest);
  });

  it('request logs and metrics label the decoded name too', () => {
    assert.deepEqual(classifyPath('GET', '/v2/alice%2Fapp/manifests/v1'), { route: 'manifest', repository: 'alice/app' });
  });
});
