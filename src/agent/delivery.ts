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
import { createHmac, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import { parseDelivery } from '../webhooks/formats.js';
import { EVENT_ID_HEADER, EVENT_TYPE_HEADER, FLUX_SIGNATURE_HEADER, SIGNATURE_HEADER, verifySignature } from '../webhooks/signing.js';
import { PING_EVENT_TYPE } from '../webhooks/types.js';
import type { DeployEvent } from './state.js';

export const TIMESTAMP_SIGNATURE_HEADER = 'X-Registry-Signature-Timestamp';
/** GitHub's convention, which the registry also sends. */
export const HUB_SIGNATURE_HEADER = 'X-Hub-Signature-256';
/** Where the registry wants this delivery's deploy results (shared contract 1). */
export const DEPLOY_CALLBACK_HEADER = 'X-Registry-Deploy-Callback';

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

/** The `t` of a timestamp signature that verifies over this body; null when it does not. */
export function verifyTimestampSignature(secret: string, body: Buffer, value: string | undefined): number | null {
  const match = value ? /^\s*t=(\d{1,12}),\s*sha256=([0-9a-fA-F]{64})\s*$/.exec(value) : null;
  if (!match) return null;
  const expected = createHmac('sha256', secret).update(`${match[1]}.`).update(body).digest();
  const given = Buffer.from(match[2]!, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? Number(match[1]) : null;
}

/** Checks and reads a delivery body; `now` in ms. */
export function readDelivery(secret: string, body: Buffer, headers: http.IncomingHttpHeaders, maxSkewSeconds: number, now: number): DeliveryVerdict {
  const stamp = verifyTimestampSignature(secret, body, header(headers, TIMESTAMP_SIGNATURE_HEADER));
  const bodySigned = [SIGNATURE_HEADER, HUB_SIGNATURE_HEADER, FLUX_SIGNATURE_HEADER].some((name) => verifySignature(secret, body, header(headers, name)));
  if (stamp === null && !bodySigned) return { ok: false, status: 401, error: 'bad or missing signature' };
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, status: 400, error: 'body is not JSON' };
  }
  const parsed = parseDelivery(json);
  const hub = parsed ? null : parseDockerHub(json, headers, now);
  if (!parsed && !hub) return { ok: false, status: 400, error: 'not a registry event (native, distribution, cloudevents or dockerhub)' };

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
  if (hub) return { ok: true, delivery: hub };
  const { sentAt: _sent, ...event } = parsed!;
  return {
    ok: true,
    delivery: { event: { ...event, time: eventTime(json, now) }, callbackUrl: header(headers, DEPLOY_CALLBACK_HEADER) ?? null },
  };
}

/** When the change happened, from the body (native `timestamp`, distribution `events[0].timestamp`, CloudEvents `time`). */
function eventTime(json: unknown, fallback: number): number {
  const body = json as Record<string, unknown>;
  const first = Array.isArray(body.events) ? (body.events[0] as Record<string, unknown> | undefined) : undefined;
  const value = body.timestamp ?? body.time ?? first?.timestamp;
  const time = typeof value === 'string' ? Date.parse(value) : NaN;
  return Number.isNaN(time) ? fallback : time;
}

/** Docker Hub's push webhook body, as the registry's `dockerhub` format writes it. */
function parseDockerHub(json: unknown, headers: http.IncomingHttpHeaders, now: number): ReadDelivery | null {
  if (!isObject(json) || !isObject(json.push_data) || !isObject(json.repository)) return null;
  const { push_data: push, repository } = json;
  const name = text(repository.repo_name) ?? (text(repository.namespace) && text(repository.name) ? `${repository.namespace}/${repository.name}` : text(repository.name));
  const callbackUrl = text(json.callback_url);
  let registry: string | null = null;
  try {
    registry = callbackUrl ? new URL(callbackUrl).host : null;
  } catch {
    registry = null;
  }
  const tag = text(push.tag);
  const pushedAt = typeof push.pushed_at === 'number' ? push.pushed_at * 1000 : NaN;
  return {
    event: {
      id: header(headers, EVENT_ID_HEADER) ?? '',
      type: header(headers, EVENT_TYPE_HEADER) ?? (name ? 'tag.created' : PING_EVENT_TYPE),
      registry,
      repository: name,
      tag,
      digest: null,
      mediaType: null,
      reference: registry && name ? `${registry}/${name}${tag ? `:${tag}` : ''}` : null,
      previousDigest: null,
      format: 'dockerhub',
      time: Number.isNaN(pushedAt) ? now : pushedAt,
      raw: json,
    },
    callbackUrl: callbackUrl ?? header(headers, DEPLOY_CALLBACK_HEADER) ?? null,
  };
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
