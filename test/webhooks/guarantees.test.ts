/**
 * Promises no test pinned before (issue 16.13, 16.14): a tag change and its outbox event commit
 * together or not at all, whichever of the two fails; retries wait for the delivery's
 * next_attempt_at (exponential backoff), not for the next poll.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import request from 'supertest';
import { pushImage } from '../helpers/app.js';
import { cleanupAfterEach, registryAndListener, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const cleanups = cleanupAfterEach();

describe('a tag and its event', () => {
  test('no tag without its event, no event without its tag, when either write fails', async () => {
    const { registry } = await registryAndListener(cleanups);
    const image = await pushImage(registry.app, 'team/app', 'v1');
    // A second connection to the registry's database, as another process would have.
    const db = new Database(path.join(registry.root, 'registry.db'));
    cleanups.push(async () => void db.close());
    const count = (sql: string) => db.prepare(sql).pluck().get() as number;
    const events = () => count('SELECT COUNT(*) FROM events');
    const tags = () => count("SELECT COUNT(*) FROM tags WHERE name = 'v2'");
    const put = () => request(registry.app).put('/v2/team/app/manifests/v2').set('Content-Type', image.mediaType).send(image.body.toString('utf8'));
    const before = events();

    // The outbox write fails (as if the process died between the tag and its event).
    db.exec("CREATE TRIGGER outbox_down BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'outbox unavailable'); END");
    assert.equal((await put()).status, 500);
    assert.equal(tags(), 0, 'the tag was not kept without its event');
    assert.equal((await request(registry.app).get('/v2/team/app/manifests/v2')).status, 404);
    assert.equal(events(), before);
    db.exec('DROP TRIGGER outbox_down');

    // The tag write fails after the event was written.
    db.exec("CREATE TRIGGER tags_down BEFORE INSERT ON tags BEGIN SELECT RAISE(ABORT, 'tags unavailable'); END");
    assert.equal((await put()).status, 500);
    assert.equal(events(), before, 'no event for a tag that was never made');
    assert.equal(tags(), 0);
    db.exec('DROP TRIGGER tags_down');

    assert.equal((await put()).status, 201);
    assert.equal(tags(), 1);
    assert.equal(events(), before + 1);
    assert.equal(count("SELECT COUNT(*) FROM events WHERE type = 'tag.created' AND tag = 'v2'"), 1);
  });
});

describe('retry spacing', () => {
  test('each retry waits the backoff the delivery recorded, not the poll interval', async () => {
    // Polls every 20 ms; the first retries are due 100-200 ms, then 200-400 ms, then 200-400 ms later.
    const { registry, listener } = await registryAndListener(cleanups, { webhooks: { pollIntervalMs: 20, initialBackoffMs: 200, maxBackoffMs: 400 } });
    listener.respond = () => ({ status: 503 });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    await pushImage(registry.app, 'team/app', 'v1');
    await waitFor(() => listener.received.length >= 4, 'four attempts', 10_000);
    const [delivery] = await registry.webhooks.listDeliveries(sub.id);
    const { log } = await registry.webhooks.getDelivery(sub.id, delivery!.id);
    const arrivals = listener.received.slice(0, 4).map((r) => r.at);
    const lowerBounds = [100, 200, 200];
    for (let n = 1; n < 4; n++) {
      const gap = arrivals[n]! - arrivals[n - 1]!;
      // The lower bound of the jittered backoff, less a little for clocks read in two places.
      assert.ok(gap >= lowerBounds[n - 1]! - 15, `retry ${n} came ${gap} ms after the attempt before (at least ${lowerBounds[n - 1]} ms due)`);
      assert.ok(log[n]!.at - log[n - 1]!.at >= lowerBounds[n - 1]! - 15, `the log agrees for retry ${n}`);
    }
  });
});
