/**
 * Delivery signatures: HMAC-SHA256 over the exact request body with the subscription's
 * secret, written `sha256=<hex>` (GitHub's and Flux's `generic-hmac` convention). The body
 * carries the time of the attempt (`sentAt`), so a receiver that checks the signature and
 * the age also refuses replays.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'X-Registry-Signature-256';
/** The header Flux's notification-controller `generic-hmac` receiver checks. */
export const FLUX_SIGNATURE_HEADER = 'X-Signature';
export const EVENT_ID_HEADER = 'X-Registry-Event-Id';
export const EVENT_TYPE_HEADER = 'X-Registry-Event';
export const DELIVERY_HEADER = 'X-Registry-Delivery';
export const ATTEMPT_HEADER = 'X-Registry-Attempt';
/** Unix seconds of the attempt; informative, the signed copy is `sentAt` in the body. */
export const TIMESTAMP_HEADER = 'X-Registry-Timestamp';

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
