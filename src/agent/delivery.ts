/**
 * Reading one delivery: is it from the registry and fresh, and what event does it carry.
 *
 * Authentication (shared contract 2), either of:
 * (a) `X-Registry-Signature-Timestamp: t=<unix seconds>,sha256=<hex HMAC(secret, "<t>.<raw body>")>`
 *     verifies and `t` is within `maxSkewSeconds` of now: works for every format, including those
 *     whose bodies carry nothing outside their schema (distribution, Docker Hub);
 * (b) a body signature (`X-Registry-Signature-256`, `X-Hub-Signature-256` or `X-Signature`:
 *     `sha256=<hex HMAC(secret, raw body)>`) verifies and the body's `sentAt` (CloudEvents: `sentat`)
 *     is fresh.
 * Formats: native, CNCF distribution's envelope (`events[0].target.repository/tag/digest`,
 * `request.host`), CloudEvents, and Docker Hub's (`push_data.tag`, `repository.repo_name`,
 * `callback_url`; its event id comes from `X-Registry-Event-Id`, its host from the callback).
 */
import type http from 'node:http';
import { parseDelivery } from '../webhooks/formats.js';
import {
  DEPLOY_CALLBACK_HEADER,
  EVENT_ID_HEADER,
  EVENT_TYPE_HEADER,
  FLUX_SIGNATURE_HEADER,
  HUB_SIGNATURE_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_SIGNATURE_HEADER,
  verifySignature,
  verifyTimestamped,
} from '../webhooks/signing.js';
import type { DeployEvent } from './state.js';

export interface ReadDelivery {
  event: DeployEvent;
  /** The delivery's deploy-results URL, when it names one. */
  callbackUrl: string | null;
}

export type DeliveryVerdict = { ok: true; delivery: ReadDelivery } | { ok: false; status: 400 | 401; error: string };

export function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Any age: freshness is judged by the caller, so that a stale delivery is told why. */
const ANY_TIME = { maxAgeSeconds: Infinity, maxFutureSeconds: Infinity };

/** Checks and reads a delivery body; `now` in ms. */
export function readDelivery(secret: string, body: Buffer, headers: http.IncomingHttpHeaders, maxSkewSeconds: number, now: number): DeliveryVerdict {
  const stampedAt = verifyTimestamped(secret, body, header(headers, TIMESTAMP_SIGNATURE_HEADER), now, ANY_TIME);
  const stamp = stampedAt === null ? null : stampedAt.getTime() / 1000;
  const bodySigned = [SIGNATURE_HEADER, HUB_SIGNATURE_HEADER, FLUX_SIGNATURE_HEADER].some((name) => verifySignature(secret, body, header(headers, name)));
  if (stamp === null && !bodySigned) return { ok: false, status: 401, error: 'bad or missing signature' };
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, status: 400, error: 'body is not JSON' };
  }
  // Docker Hub bodies have no event id of their own: the registry sends it as a header.
  const parsed = parseDelivery(json, { eventId: header(headers, EVENT_ID_HEADER) });
  if (!parsed) return { ok: false, status: 400, error: 'not a registry event (native, distribution, cloudevents or dockerhub)' };

  const skewMs = maxSkewSeconds * 1000;
  const sentAt = parsed?.sentAt?.getTime() ?? null;
  const fresh = (stamp !== null && Math.abs(now - stamp * 1000) <= skewMs) || (bodySigned && sentAt !== null && Math.abs(now - sentAt) <= skewMs);
  if (!fresh) {
    const when = stamp !== null ? new Date(stamp * 1000).toISOString() : sentAt !== null ? new Date(sentAt).toISOString() : null;
    return {
      ok: false,
      status: 401,
      error: when
        ? `timestamp ${when} is outside the allowed ${maxSkewSeconds} s`
        : `no signed timestamp (${TIMESTAMP_SIGNATURE_HEADER}, or sentAt in a signed body)`,
    };
  }
  const { sentAt: _sent, ...event } = parsed;
  const fields = json as Record<string, unknown>;
  const hub = event.format === 'dockerhub';
  // Docker Hub's body names only pushes; the registry's own event type travels in a header.
  const type = hub && event.repository !== null ? (header(headers, EVENT_TYPE_HEADER) ?? event.type) : event.type;
  const callbackUrl = (hub && typeof fields.callback_url === 'string' && fields.callback_url) || header(headers, DEPLOY_CALLBACK_HEADER) || null;
  return { ok: true, delivery: { event: { ...event, type, time: eventTime(fields, now) }, callbackUrl } };
}

/**
 * When the change happened, from the body (native `timestamp`, distribution `events[0].timestamp`,
 * CloudEvents `time`, Docker Hub `push_data.pushed_at` in seconds).
 */
function eventTime(body: Record<string, unknown>, fallback: number): number {
  const first = Array.isArray(body.events) ? (body.events[0] as Record<string, unknown> | undefined) : undefined;
  const pushData = body.push_data as Record<string, unknown> | undefined;
  if (typeof pushData?.pushed_at === 'number') return pushData.pushed_at * 1000;
  const value = body.timestamp ?? body.time ?? first?.timestamp;
  const time = typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isNaN(time) ? fallback : time;
}
