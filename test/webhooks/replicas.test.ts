/**
 * Webhooks with two replicas on one PostgreSQL database: pushes alternating between them reach
 * a subscription once each, in order per repository (one replica claims each delivery; a lane's
 * next delivery waits for its head), and a replica polling only once a minute still delivers at
 * once a push made on the other, woken by LISTEN/NOTIFY.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pushImage } from '../helpers/app.js';
import { freshPostgresDatabase, POSTGRES_SKIP } from '../helpers/metadata-backends.js';
import { cleanupAfterEach, createTestRegistry, startListener, waitFor, type TestRegistry } from './support.js';

describe('webhooks across replicas (PostgreSQL)', { skip: POSTGRES_SKIP }, () => {
  const cleanups = cleanupAfterEach();

  async function replicas(webhooks: Array<NonNullable<Parameters<typeof createTestRegistry>[0]>['webhooks']>): Promise<TestRegistry[]> {
    const metadata = { driver: 'postgres' as const, postgres: { url: await freshPostgresDatabase() } };
    const started: TestRegistry[] = [];
    for (const settings of webhooks) {
      const registry = await createTestRegistry({ metadata, webhooks: settings });
      cleanups.push(() => registry.dispose());
      started.push(registry);
    }
    return started;
  }

  test('pushes on two replicas: every tag event delivered once, in order per repository', async () => {
    const listener = await startListener();
    cleanups.push(() => listener.close());
    const [a, b] = await replicas([{}, {}]);
    await a!.webhooks.createSubscription({ url: `${listener.url}/hook`, secret: 'a-shared-secret-of-enough-length', events: ['tag.created', 'tag.updated'] });
    const tags = Array.from({ length: 12 }, (_, i) => `t${i}`);
    // Each image goes through one replica entirely (their blob stores are separate folders here).
    for (const [i, tag] of tags.entries()) await pushImage([a!, b!][i % 2]!.app, 'team/app', tag);
    await waitFor(() => listener.received.length >= tags.length, 'every tag event');
    // Give a duplicate the time to show up, should one be sent.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const got = listener.received.map((r) => r.json.tag as string);
    assert.deepEqual(got, tags, 'each tag once, in push order');
    assert.equal(new Set(listener.received.map((r) => r.json.id)).size, tags.length);
  });

  test('a replica polling once a minute delivers a push made on the other at once (LISTEN/NOTIFY)', async () => {
    const listener = await startListener();
    cleanups.push(() => listener.close());
    // Replica a sends nothing (its dispatcher is off); b polls once a minute.
    const [a, b] = await replicas([{ enabled: false }, { pollIntervalMs: 60_000 }]);
    await b!.webhooks.createSubscription({ url: `${listener.url}/hook`, secret: 'a-shared-secret-of-enough-length', events: ['tag.created'] });
    // Let b's dispatcher go idle on its poll timer before the push.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const pushedAt = Date.now();
    await pushImage(a!.app, 'team/woken', 'v1');
    await waitFor(() => listener.received.some((r) => r.json.tag === 'v1'), 'the delivery from the other replica', 20_000);
    const latency = Date.now() - pushedAt;
    assert.ok(latency < 15_000, `delivered after ${latency} ms, as if only the minute's poll found it`);
  });
});
