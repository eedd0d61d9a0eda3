/**
 * The PostgreSQL read cache's rules (src/metadata/postgres/read-cache.ts) on a feed the test
 * drives: nothing is cached or served while the feed does not listen, a notice forgets
 * everything, a read in flight across a change is not kept, entries expire, absences are not
 * cached. test/metadata/postgres-read-cache.test.ts runs it on real PostgreSQL replicas.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Channel, ChangeFeed } from '../../src/metadata/postgres/notifications.js';
import { ReadCache } from '../../src/metadata/postgres/read-cache.js';

function fakeFeed(): ChangeFeed & { listening: boolean; notify(channel: Channel): void; opened: number } {
  const listeners: Array<{ channel: Channel; listener: () => void }> = [];
  return {
    listening: false,
    opened: 0,
    onChange: (channel, listener) => void listeners.push({ channel, listener }),
    notify: (channel) => listeners.filter((l) => l.channel === channel).forEach((l) => l.listener()),
    close: async () => undefined,
  };
}

function setUp(ttlMs = 1_000) {
  const feed = fakeFeed();
  let clock = 0;
  const cache = new ReadCache(
    () => {
      feed.opened++;
      return feed;
    },
    'accounts',
    { ttlMs, maxEntries: 10, now: () => clock },
  );
  let loads = 0;
  let value: string | null = 'v1';
  const read = () =>
    cache.get('key', async () => {
      loads++;
      return value;
    });
  return {
    feed,
    cache,
    read,
    loads: () => loads,
    set: (next: string | null) => (value = next),
    advance: (ms: number) => (clock += ms),
  };
}

describe('ReadCache', () => {
  it('opens the feed on first use, and neither keeps nor serves entries until it listens', async () => {
    const t = setUp();
    assert.equal(t.feed.opened, 0);
    await t.read();
    await t.read();
    assert.equal(t.feed.opened, 1);
    assert.equal(t.loads(), 2);
    t.feed.listening = true;
    await t.read();
    await t.read();
    assert.equal(t.loads(), 3, 'kept once listening');
    t.feed.listening = false;
    t.set('v2');
    assert.equal(await t.read(), 'v2', 'the database answers while the feed is down');
  });

  it("forgets everything on a notice of its channel, and only of its channel", async () => {
    const t = setUp();
    t.feed.listening = true;
    await t.read();
    t.set('v2');
    t.feed.notify('blobLinks');
    assert.equal(await t.read(), 'v1');
    t.feed.notify('accounts');
    assert.equal(await t.read(), 'v2');
  });

  it('does not keep a read that was in flight when a change arrived', async () => {
    const t = setUp();
    t.feed.listening = true;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const inFlight = t.cache.get('key', async () => {
      await gate;
      return 'stale';
    });
    t.cache.invalidate();
    release();
    assert.equal(await inFlight, 'stale');
    assert.equal(await t.read(), 'v1', 'the stale read was not kept');
  });

  it('expires entries after ttlMs, and never caches an absence', async () => {
    const t = setUp(1_000);
    t.feed.listening = true;
    await t.read();
    t.set('v2');
    t.advance(999);
    assert.equal(await t.read(), 'v1');
    t.advance(1);
    assert.equal(await t.read(), 'v2');
    t.set(null);
    t.cache.invalidate();
    assert.equal(await t.read(), null);
    t.set('v3');
    assert.equal(await t.read(), 'v3');
  });
});
