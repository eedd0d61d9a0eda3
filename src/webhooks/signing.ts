/**
 * Delivery signatures: HMAC-SHA256 over the exact request body with the subscription's
 * secret, written `sha256=<hex>` (GitHub's and Flux's `generic-hmac` convention), and a
 * timestamped one outside the body, `t=<unix seconds>,sha256=<hex HMAC of "<t>.<body>">`, so a
 * receiver refuses replays whatever the format (distribution and Docker Hub bodies carry no
 * time of their own; native and CloudEvents bodies also keep `sentAt`).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Registry-Signature-256';
/** The header Flux's notification-controller `generic-hmac` receiver checks. */
export const FLUX_SIGNATURE_HEADER = 'X-Signature';
/** GitHub's convention (and Flux's `github` receiver, go-github's ValidatePayload): the same signature. */
export const HUB_SIGNATURE_HEADER = 'X-Hub-Signature-256';
export const EVENT_ID_HEADER = 'X-Registry-Event-Id';
export const EVENT_TYPE_HEADER = 'X-Registry-Event';
export const DELIVERY_HEADER = 'X-Registry-Delivery';
export const ATTEMPT_HEADER = 'X-Registry-Attempt';
/** Unix seconds of the attempt; informative: the signed copy is in {@link TIMESTAMP_SIGNATURE_HEADER}. */
export const TIMESTAMP_HEADER = 'X-Registry-Timestamp';
/** `t=<unix seconds>,sha256=<hex HMAC-SHA256(secret, "<t>.<raw body>")>` on every delivery. */
export const TIMESTAMP_SIGNATURE_HEADER = 'X-Registry-Signature-Timestamp';
/** Where the receiver reports the deploy's outcome (docs/webhooks.md, "Deploy results"). */
export const DEPLOY_CALLBACK_HEADER = 'X-Registry-Deploy-Callback';

/** `sha256=<hex>` of the body under the secret. */
export function sign(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Constant-time check of a `sha256=<hex>` signature header against the body. */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined | null): boolean {
  if (!header) return false;
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  const given = Buffer.from(match[1]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The value of {@link TIMESTAMP_SIGNATURE_HEADER} for a body sent at `unixSeconds`. */
export function signTimestamped(secret: string, unixSeconds: number, body: string | Buffer): string {
  const t = Math.floor(unixSeconds);
  return `t=${t},sha256=${timestampedHmac(secret, t, body).toString('hex')}`;
}

/**
 * Checks a {@link TIMESTAMP_SIGNATURE_HEADER} value: it verifies, and its time is no more than
 * `maxAgeSeconds` old nor `maxFutureSeconds` ahead of `nowMs`. Returns the time it carries, or null.
 */
export function verifyTimestamped(
  secret: string,
  body: string | Buffer,
  header: string | undefined | null,
  nowMs: number,
  window: { maxAgeSeconds: number; maxFutureSeconds: number },
): Date | null {
  if (!header) return null;
  const match = /^t=(\d{1,12}),sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!match) return null;
  const t = Number(match[1]);
  const skew = nowMs / 1000 - t;
  if (skew > window.maxAgeSeconds || -skew > window.maxFutureSeconds) return null;
  const expected = timestampedHmac(secret, t, body);
  const given = Buffer.from(match[2]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? new Date(t * 1000) : null;
}

function timestampedHmac(secret: string, t: number, body: string | Buffer): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest();
}
