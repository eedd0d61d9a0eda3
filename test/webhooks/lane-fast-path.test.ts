/**
 * A lane's backlog in one transaction per delivery (issue 16.8): the outcome of one delivery
 * and the claim of its lane's next are written together, and the dispatcher sends what was
 * claimed. The claim must mean what beginAttempt means (counted, logged, held off), and no
 * claimed delivery may be left unsent when the dispatcher stops.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pushImage } from '../helpers/app.js';
import { NO_OUTCOME_ERROR } from '../../src/webhooks/store.js';
import { cleanupAfterEach, registryAndListener, waitFor } from './support.js';

const SECRET = 'a-test-secret-of-some-length';
const cleanups = cleanupAfterEach();

describe('recording an outcome and claiming the lane next', () => {
  test('the store claims the lane next only when it is due and its subscription active, as beginAttempt would', async () => {
    const { registry, listener } = await registryAndListener(cleanups, { start: false });
    const store = registry.webhooks.store;
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    const now = Date.now();
    const queued = [];
    for (const n of [1, 2, 3]) {
      const delivery = await store.insertDelivery(
        { subscriptionId: sub.id, eventId: `event-${n}`, eventType: 'tag.created', repository: 'team/app', payload: { tag: `v${n}` } as never, context: { scheme: 'http', request: null } as never },
        now,
        now + 60_000,
      );
      queued.push(delivery!);
    }
    const [first, second, third] = queued as [NonNullable<(typeof queued)[0]>, NonNullable<(typeof queued)[0]>, NonNullable<(typeof queued)[0]>];
    assert.ok(await store.beginAttempt(first.id, 1, now, now + 5_000, 60_000));
    const lane = { subscriptionId: sub.id, repository: 'team/app', at: now + 1, holdUntil: now + 9_000, maxAgeMs: 60_000 };
    const delivered = { attempt: { attempt: 1, at: now, status: 204, latencyMs: 1, error: null, responseBody: null }, state: 'delivered' as const, nextAttemptAt: now };

    const [next] = await store.recordAttemptsAndClaimNext([{ deliveryId: first.id, outcome: delivered, next: lane }]);
    assert.equal(next?.delivery.id, second.id, 'the lane head after the delivered one');
    assert.equal(next?.delivery.attempts, 0, 'returned as it was before the claim');
    assert.equal((await store.getDelivery(first.id))?.state, 'delivered');
    const claimed = await store.getDelivery(second.id);
    assert.equal(claimed?.attempts, 1, 'the claim counts the attempt');
    assert.equal(claimed?.nextAttemptAt, now + 9_000, 'and holds the delivery off');
    assert.equal(claimed?.log.at(-1)?.error, NO_OUTCOME_ERROR, 'and logs it before anything is sent');
    assert.equal(await store.beginAttempt(second.id, 1, now + 2, now + 5_000, 60_000), false, 'no one else can claim it now');
    assert.equal((await store.dueDeliveries(now + 5_000, 10)).length, 0, 'nor does a pass find it due');

    // The lane's next is not sent while the subscription is paused: the outcome is still written.
    await registry.webhooks.updateSubscription(sub.id, { state: 'paused' });
    const secondDone = { ...delivered, attempt: { ...delivered.attempt, at: now + 2 } };
    assert.deepEqual(await store.recordAttemptsAndClaimNext([{ deliveryId: second.id, outcome: secondDone, next: lane }]), [null]);
    assert.equal((await store.getDelivery(second.id))?.state, 'delivered');
    assert.equal((await store.getDelivery(third.id))?.attempts, 0, 'nothing claimed');
  });

  test('one batch over several lanes records every outcome and claims each lane next', async () => {
    const { registry, listener } = await registryAndListener(cleanups, { start: false });
    const store = registry.webhooks.store;
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'] });
    const now = Date.now();
    const lanes = ['team/a', 'team/b', 'team/c'];
    const ids = new Map<string, number[]>();
    for (const n of [1, 2]) {
      for (const repository of lanes) {
        const delivery = await store.insertDelivery(
          { subscriptionId: sub.id, eventId: `${repository}-${n}`, eventType: 'tag.created', repository, payload: { tag: `v${n}` } as never, context: { scheme: 'http', request: null } as never },
          now,
          now + 60_000,
        );
        ids.set(repository, [...(ids.get(repository) ?? []), delivery!.id]);
      }
    }
    for (const repository of lanes) assert.ok(await store.beginAttempt(ids.get(repository)![0]!, 1, now, now + 5_000, 60_000));
    const outcome = { attempt: { attempt: 1, at: now, status: 204, latencyMs: 1, error: null, responseBody: null }, state: 'delivered' as const, nextAttemptAt: now };
    const claimed = await store.recordAttemptsAndClaimNext(
      lanes.map((repository) => ({ deliveryId: ids.get(repository)![0]!, outcome, next: { subscriptionId: sub.id, repository, at: now + 1, holdUntil: now + 9_000, maxAgeMs: 60_000 } })),
    );
    assert.deepEqual(claimed.map((due) => due?.delivery.id), lanes.map((repository) => ids.get(repository)![1]), 'each lane its own next, in the order asked');
    for (const repository of lanes) {
      assert.equal((await store.getDelivery(ids.get(repository)![0]!))?.state, 'delivered');
      assert.equal((await store.getDelivery(ids.get(repository)![1]!))?.attempts, 1);
    }
  });

  test('a backlog goes out in order, each delivery sent once, and stopping leaves no claimed delivery unsent', async () => {
    const { registry, listener } = await registryAndListener(cleanups, { webhooks: { maxInFlight: 4 } });
    const sub = await registry.webhooks.createSubscription({ url: listener.url, secret: SECRET, events: ['tag.created'], state: 'paused' });
    const tags = Array.from({ length: 40 }, (_, i) => `v${i}`);
    for (const tag of tags) await pushImage(registry.app, 'team/app', tag);
    await waitFor(async () => (await registry.webhooks.listDeliveries(sub.id, { limit: 100 })).length === tags.length, 'the backlog queued');
    // Forces the interleaving: the dispatcher is stopped just after a finished delivery claimed its lane's next.
    const store = registry.webhooks.store;
    const original = store.recordAttemptsAndClaimNext.bind(store);
    let stopping: Promise<void> | undefined;
    store.recordAttemptsAndClaimNext = async (items) => {
      const claimed = await original(items);
      if (claimed.some(Boolean) && listener.received.length >= 10) stopping ??= registry.webhooks.stop();
      return claimed;
    };
    listener.respond = () => ({ status: 204, delayMs: 30 });
    await registry.webhooks.updateSubscription(sub.id, { state: 'active' });
    await waitFor(() => stopping !== undefined, 'a stop right after a claim');
    await stopping;

    const deliveries = await registry.webhooks.listDeliveries(sub.id, { limit: 100 });
    const unfinished = [];
    for (const delivery of deliveries) {
      const whole = await registry.webhooks.store.getDelivery(delivery.id);
      if (whole?.log.some((attempt) => attempt.error !== null)) unfinished.push(`${delivery.id}: ${whole.log.map((a) => a.error).join(', ')}`);
    }
    assert.deepEqual(unfinished, [], 'every attempt begun before the stop finished, delivered (not cut off by the stop)');
    const sent = listener.received.map((r) => r.json.tag);
    assert.deepEqual(sent, tags.slice(0, sent.length), 'in order, none twice');
    assert.equal(deliveries.filter((d) => d.state === 'delivered').length, sent.length, 'what was sent is recorded delivered');
  });
});
