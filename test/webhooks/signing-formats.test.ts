/** Signatures, backoff and outcome decisions, and the three delivery formats (written and read back). */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { backoffDelay, decideOutcome } from '../../src/webhooks/attempt.js';
import { formatBody, indexPlatforms, parseDelivery, payloadFromEvent } from '../../src/webhooks/formats.js';
import type { SendResult } from '../../src/webhooks/outbound.js';
import { sign, verifySignature } from '../../src/webhooks/signing.js';
import type { Delivery, EventPayload } from '../../src/webhooks/types.js';

describe('signatures', () => {
  const secret = 'the-subscription-secret';
  const body = '{"id":"1","sentAt":"2025-01-01T00:00:00.000Z"}';

  test('sha256=<hex> of an HMAC-SHA256 over the exact body', () => {
    const expected = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
    assert.equal(sign(secret, body), expected);
    assert.ok(verifySignature(secret, body, expected));
    assert.ok(verifySignature(secret, Buffer.from(body), expected.toUpperCase().replace('SHA256=', 'sha256=')));
  });

  test('a changed body, another secret or a malformed header fail', () => {
    const signature = sign(secret, body);
    assert.ok(!verifySignature(secret, `${body} `, signature));
    assert.ok(!verifySignature('another-secret', body, signature));
    assert.ok(!verifySignature(secret, body, undefined));
    assert.ok(!verifySignature(secret, body, signature.replace('sha256=', 'sha1=')));
    assert.ok(!verifySignature(secret, body, signature.slice(0, -2)));
    assert.ok(!verifySignature(secret, body, 'sha256=zz'));
  });
});

describe('backoff and outcomes', () => {
  const config = { initialBackoffMs: 1_000, maxBackoffMs: 60_000 };

  test('doubles per attempt with jitter between half and all, capped', () => {
    assert.equal(backoffDelay(1, config, () => 0), 500);
    assert.equal(backoffDelay(1, config, () => 1), 1_000);
    assert.equal(backoffDelay(3, config, () => 1), 4_000);
    assert.equal(backoffDelay(3, config, () => 0), 2_000);
    assert.equal(backoffDelay(30, config, () => 1), 60_000);
    assert.equal(backoffDelay(500, config, () => 0.5), 45_000);
  });

  const delivery = { expiresAt: 100_000 } as Delivery;
  const attempt = { attempt: 1, at: 0, status: null, latencyMs: 1, error: 'x', responseBody: null };
  const result = (partial: Partial<SendResult>): SendResult => ({
    status: 500,
    latencyMs: 1,
    error: 'HTTP 500',
    responseBody: null,
    retryable: true,
    retryAfterSeconds: null,
    ...partial,
  });

  test('2xx delivered; permanent errors failed; retryable ones scheduled, honouring Retry-After', () => {
    assert.equal(decideOutcome(delivery, attempt, result({ status: 200, error: null, retryable: false }), config, 0).state, 'delivered');
    assert.equal(decideOutcome(delivery, attempt, result({ status: 404, error: 'HTTP 404', retryable: false }), config, 0).state, 'failed');
    const retry = decideOutcome(delivery, attempt, result({}), config, 10_000, () => 1);
    assert.deepEqual([retry.state, retry.nextAttemptAt], ['pending', 11_000]);
    const later = decideOutcome(delivery, attempt, result({ status: 429, retryAfterSeconds: 30 }), config, 10_000, () => 1);
    assert.equal(later.nextAttemptAt, 40_000);
  });

  test('the last try is at the deadline; past it the delivery fails', () => {
    const near = decideOutcome(delivery, { ...attempt, attempt: 10 }, result({}), config, 99_000, () => 1);
    assert.deepEqual([near.state, near.nextAttemptAt], ['pending', 100_000]);
    assert.equal(decideOutcome(delivery, attempt, result({}), config, 100_000).state, 'failed');
  });
});

describe('formats', () => {
  const payload: EventPayload = payloadFromEvent(
    {
      id: '5b0c3f4e-1111-4222-8333-444455556666',
      seq: 7,
      type: 'tag.updated',
      repository: 'team/app',
      tag: '1.4.2',
      digest: `sha256:${'a'.repeat(64)}`,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      size: 1234,
      previousDigest: `sha256:${'b'.repeat(64)}`,
      actor: { name: 'ci-bot', kind: 'robot' },
      request: null,
      createdAt: Date.UTC(2025, 0, 2, 3, 4, 5),
    },
    'registry.example.com',
    [{ os: 'linux', architecture: 'amd64' }],
  );
  const sentAt = new Date(Date.UTC(2025, 0, 2, 3, 5, 0));
  const options = { scheme: 'https' as const, cloudEventsTypePrefix: 'dev.example.container' };

  test('the native payload carries everything a deploy needs', () => {
    const { contentType, body } = formatBody('native', payload, sentAt, options);
    assert.equal(contentType, 'application/json');
    assert.deepEqual(JSON.parse(body), {
      id: '5b0c3f4e-1111-4222-8333-444455556666',
      type: 'tag.updated',
      timestamp: '2025-01-02T03:04:05.000Z',
      registry: 'registry.example.com',
      repository: 'team/app',
      tag: '1.4.2',
      digest: `sha256:${'a'.repeat(64)}`,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      size: 1234,
      platforms: [{ os: 'linux', architecture: 'amd64' }],
      reference: `registry.example.com/team/app:1.4.2@sha256:${'a'.repeat(64)}`,
      actor: { name: 'ci-bot', kind: 'robot' },
      previousDigest: `sha256:${'b'.repeat(64)}`,
      sentAt: '2025-01-02T03:05:00.000Z',
    });
  });

  test('each format reads back to the same event, with the signed sentAt where the format has one', () => {
    for (const format of ['native', 'distribution', 'cloudevents', 'dockerhub'] as const) {
      // Docker Hub's body has no event id: receivers take X-Registry-Event-Id.
      const received = parseDelivery(JSON.parse(formatBody(format, payload, sentAt, options).body), { eventId: payload.id });
      assert.ok(received, format);
      assert.equal(received.format, format);
      assert.equal(received.id, payload.id, format);
      assert.equal(received.repository, 'team/app', format);
      assert.equal(received.tag, '1.4.2', format);
      assert.equal(received.digest, payload.digest, format);
      assert.equal(received.registry, 'registry.example.com', format);
      assert.equal(received.reference, payload.reference, format);
      // Distribution's envelope has no place for it: X-Registry-Signature-Timestamp carries it.
      const timeInBody = format === 'native' || format === 'cloudevents';
      assert.equal(received.sentAt?.toISOString(), timeInBody ? sentAt.toISOString() : undefined, format);
    }
  });

  test('a ping reads back as a ping in every format', () => {
    const ping: EventPayload = { ...payload, type: 'ping', repository: null, tag: null, digest: null, reference: null };
    for (const format of ['native', 'distribution', 'cloudevents', 'dockerhub'] as const) {
      assert.equal(parseDelivery(JSON.parse(formatBody(format, ping, sentAt, options).body))?.type, 'ping', format);
    }
  });

  test('index platforms: distinct, in order, without attestation entries', () => {
    const index = Buffer.from(
      JSON.stringify({
        manifests: [
          { platform: { os: 'linux', architecture: 'amd64' } },
          { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
          { platform: { os: 'linux', architecture: 'amd64' } },
          { platform: { os: 'unknown', architecture: 'unknown' } },
          { digest: 'no platform' },
        ],
      }),
    );
    assert.deepEqual(indexPlatforms(index), [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ]);
    assert.equal(indexPlatforms(Buffer.from('{"layers":[]}')), null);
    assert.equal(indexPlatforms(Buffer.from('not json')), null);
  });

  test('anything else is not a delivery', () => {
    assert.equal(parseDelivery([]), null);
    assert.equal(parseDelivery({ hello: 'world' }), null);
    assert.equal(parseDelivery({ events: [{}, {}] }), null);
  });
});
