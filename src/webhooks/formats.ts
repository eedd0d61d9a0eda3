/**
 * Building the native payload from an outbox event, and writing it in the format a
 * subscription chose:
 * - `native`: the payload itself plus `sentAt`;
 * - `distribution`: CNCF distribution's notification envelope (`{"events":[…]}`), as Keel's
 *   `/v1/webhooks/registry` and other `registry:2` consumers read it;
 * - `cloudevents`: one CloudEvents 1.0 event in structured JSON mode.
 * Native and CloudEvents bodies also carry the attempt time (`sentAt`, the CloudEvents
 * extension attribute `sentat`); distribution's carries nothing outside its schema (the time
 * is in X-Registry-Signature-Timestamp). {@link parseDelivery} reads every format back.
 */
import type { RegistryEvent } from '../registry/events.js';
import { MEDIA_TYPES } from '../registry/media-types.js';
import { dockerHubBody, readDockerHub } from './dockerhub.js';
import {
  PING_EVENT_TYPE,
  PULL_EVENT_TYPE,
  SUBSCRIBABLE_EVENT_TYPES,
  type EventPayload,
  type DeliveryContext,
  type Platform,
  type SentPayload,
  type WebhookEventType,
  type WebhookFormat,
} from './types.js';

export const DISTRIBUTION_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
export const CLOUDEVENTS_MEDIA_TYPE = 'application/cloudevents+json; charset=utf-8';

export interface FormatOptions {
  /** Scheme of the registry URL the event names, for the absolute URLs some formats carry. */
  scheme: 'http' | 'https';
  /** CloudEvents `type` prefix: `<prefix>.tag.created`. */
  cloudEventsTypePrefix: string;
  /** The request that made the change (distribution's `request` record); none for system changes. */
  request?: DeliveryContext['request'];
  /** This registry node (distribution's `source` record): `<hostname>:<port>` and a per-process id. */
  source?: SourceRecord;
  /** The delivery's deploy callback (Docker Hub's `callback_url`). */
  callbackUrl?: string;
}

export interface SourceRecord {
  addr: string;
  instanceID: string;
}

export interface FormattedBody {
  contentType: string;
  body: string;
}

/** `host/repo:tag@digest`, leaving out what the event does not have. */
export function imageReference(host: string, repository: string | null, tag: string | null, digest: string | null): string | null {
  if (!repository) return null;
  return `${host}/${repository}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
}

/** The native payload of an outbox event; `platforms` comes from the index content, when there is one. */
export function payloadFromEvent(event: RegistryEvent, registry: string, platforms: Platform[] | null): EventPayload {
  return {
    id: event.id,
    type: event.type,
    timestamp: new Date(event.createdAt).toISOString(),
    registry,
    repository: event.repository,
    tag: event.tag,
    digest: event.digest,
    mediaType: event.mediaType,
    size: event.size,
    platforms,
    reference: imageReference(registry, event.repository, event.tag, event.digest),
    actor: { name: event.actor.name, kind: event.actor.kind },
    previousDigest: event.previousDigest,
  };
}

export function isIndexMediaType(mediaType: string | null): boolean {
  return mediaType === MEDIA_TYPES.ociIndex || mediaType === MEDIA_TYPES.dockerManifestList;
}

/**
 * The distinct platforms an index's children declare, in their order. Attestation entries
 * (`unknown/unknown`, as BuildKit writes them) are left out. Null when the content is not an index.
 */
export function indexPlatforms(content: Buffer): Platform[] | null {
  let json: unknown;
  try {
    json = JSON.parse(content.toString('utf8'));
  } catch {
    return null;
  }
  if (!isObject(json) || !Array.isArray(json.manifests)) return null;
  const platforms: Platform[] = [];
  const seen = new Set<string>();
  for (const child of json.manifests) {
    if (!isObject(child) || !isObject(child.platform)) continue;
    const { os, architecture, variant } = child.platform;
    if (typeof os !== 'string' || typeof architecture !== 'string') continue;
    if (os === 'unknown' && architecture === 'unknown') continue;
    const platform: Platform = { os, architecture };
    if (typeof variant === 'string' && variant !== '') platform.variant = variant;
    const key = `${os}/${architecture}/${platform.variant ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    platforms.push(platform);
  }
  return platforms;
}

/** Whether a format can express an event type (distribution has no repository creation). */
export function formatSupports(format: WebhookFormat, type: WebhookEventType): boolean {
  if (format === 'dockerhub') return type === 'tag.created' || type === 'tag.updated' || type === PING_EVENT_TYPE;
  return !(format === 'distribution' && type === 'repository.created');
}

/** The request body and Content-Type of one attempt. */
export function formatBody(format: WebhookFormat, payload: EventPayload, sentAt: Date, options: FormatOptions): FormattedBody {
  const sent = sentAt.toISOString();
  switch (format) {
    case 'native':
      return { contentType: 'application/json', body: JSON.stringify({ ...payload, sentAt: sent } satisfies SentPayload) };
    case 'distribution':
      return { contentType: DISTRIBUTION_MEDIA_TYPE, body: JSON.stringify(distributionEnvelope(payload, options)) };
    case 'cloudevents':
      return { contentType: CLOUDEVENTS_MEDIA_TYPE, body: JSON.stringify(cloudEvent(payload, sent, options)) };
    case 'dockerhub':
      return { contentType: 'application/json', body: JSON.stringify(dockerHubBody(payload, { scheme: options.scheme, callbackUrl: options.callbackUrl ?? '' })) };
  }
}

const DISTRIBUTION_ACTIONS: Partial<Record<WebhookEventType, { action: string; method: string }>> = {
  'tag.created': { action: 'push', method: 'PUT' },
  'tag.updated': { action: 'push', method: 'PUT' },
  'tag.deleted': { action: 'delete', method: 'DELETE' },
  'manifest.deleted': { action: 'delete', method: 'DELETE' },
  [PULL_EVENT_TYPE]: { action: 'pull', method: 'GET' },
};

/**
 * CNCF distribution's envelope (notifications/event.go), and nothing outside its schema: the
 * attempt time is in X-Registry-Signature-Timestamp instead. `request` is the request that
 * made the change (its id shared by every event of that request; for the registry's own
 * changes, the event id), `source` this node, `actor` `{}` for anonymous as distribution does.
 */
function distributionEnvelope(payload: EventPayload, options: FormatOptions): Record<string, unknown> {
  const mapping = DISTRIBUTION_ACTIONS[payload.type];
  // A ping is an empty envelope: valid for every consumer, and it triggers nothing.
  if (!mapping || payload.repository === null) return { events: [] };
  const target: Record<string, unknown> = { repository: payload.repository };
  if (payload.mediaType) target.mediaType = payload.mediaType;
  if (payload.digest) {
    target.digest = payload.digest;
    target.url = `${options.scheme}://${payload.registry}/v2/${payload.repository}/manifests/${payload.digest}`;
  }
  if (payload.size !== null) {
    target.size = payload.size;
    target.length = payload.size;
  }
  if (payload.tag) target.tag = payload.tag;
  return {
    events: [
      {
        id: payload.id,
        timestamp: payload.timestamp,
        action: mapping.action,
        target,
        // Consumers such as Keel build the image name from request.host + "/" + target.repository.
        request: {
          id: options.request?.id || payload.id,
          ...(options.request?.addr ? { addr: options.request.addr } : {}),
          host: payload.registry,
          method: options.request?.method || mapping.method,
          useragent: options.request?.userAgent ?? '',
        },
        actor: payload.actor.kind === 'anonymous' ? {} : { name: payload.actor.name },
        source: options.source ? { addr: options.source.addr, instanceID: options.source.instanceID } : {},
      },
    ],
  };
}

function cloudEvent(payload: EventPayload, sentAt: string, options: FormatOptions): Record<string, unknown> {
  const subject = payload.repository ? `${payload.repository}${payload.tag ? `:${payload.tag}` : payload.digest ? `@${payload.digest}` : ''}` : undefined;
  return {
    specversion: '1.0',
    id: payload.id,
    source: `${options.scheme}://${payload.registry}`,
    type: `${options.cloudEventsTypePrefix}.${payload.type}`,
    ...(subject ? { subject } : {}),
    time: payload.timestamp,
    datacontenttype: 'application/json',
    sentat: sentAt,
    data: {
      registry: payload.registry,
      repository: payload.repository,
      tag: payload.tag,
      digest: payload.digest,
      mediaType: payload.mediaType,
      size: payload.size,
      platforms: payload.platforms,
      reference: payload.reference,
      previousDigest: payload.previousDigest,
      actor: payload.actor,
    },
  };
}

/** A delivery as a receiver reads it, whichever format it came in. */
export interface ReceivedEvent {
  id: string;
  type: WebhookEventType | string;
  registry: string | null;
  repository: string | null;
  tag: string | null;
  digest: string | null;
  mediaType: string | null;
  reference: string | null;
  previousDigest: string | null;
  /** Attempt time, from the signed body; null when the sender gave none. */
  sentAt: Date | null;
  format: WebhookFormat;
  /** The body as parsed, for handing on (REGISTRY_EVENT). */
  raw: unknown;
}

/**
 * Reads a delivery body in any of the four formats; null when it is none of them. Docker Hub's
 * body has no event id: pass the X-Registry-Event-Id header as `eventId` (it is used when the
 * body has none).
 */
export function parseDelivery(json: unknown, headers: { eventId?: string } = {}): ReceivedEvent | null {
  if (!isObject(json)) return null;
  const dockerHub = readDockerHub(json);
  if (dockerHub) {
    const type = dockerHub.repository === null ? PING_EVENT_TYPE : 'tag.created';
    const reference = dockerHub.registry ? imageReference(dockerHub.registry, dockerHub.repository, dockerHub.tag, dockerHub.digest) : null;
    const { registry, repository, tag, digest } = dockerHub;
    return { ...emptyReceived(headers.eventId ?? '', type, 'dockerhub', json), registry, repository, tag, digest, reference };
  }
  if (json.specversion === '1.0' && typeof json.type === 'string' && typeof json.id === 'string') {
    const data = isObject(json.data) ? json.data : {};
    const type = SUBSCRIBABLE_EVENT_TYPES.find((t) => (json.type as string).endsWith(`.${t}`)) ??
      ((json.type as string).endsWith(`.${PING_EVENT_TYPE}`) ? PING_EVENT_TYPE : (json.type as string));
    return {
      id: json.id,
      type,
      registry: str(data.registry),
      repository: str(data.repository),
      tag: str(data.tag),
      digest: str(data.digest),
      mediaType: str(data.mediaType),
      reference: str(data.reference),
      previousDigest: str(data.previousDigest),
      sentAt: date(json.sentat),
      format: 'cloudevents',
      raw: json,
    };
  }
  if (Array.isArray(json.events)) {
    const event = json.events[0];
    if (json.events.length > 1 || (event !== undefined && !isObject(event))) return null;
    if (event === undefined) {
      // An empty envelope is a ping.
      return { ...emptyReceived('', PING_EVENT_TYPE, 'distribution', json), sentAt: date(json.sentAt) };
    }
    const target = isObject(event.target) ? event.target : {};
    const request = isObject(event.request) ? event.request : {};
    const tag = str(target.tag);
    const action = str(event.action);
    const type =
      action === 'push' ? 'tag.created' : action === 'pull' ? PULL_EVENT_TYPE : action === 'delete' ? (tag ? 'tag.deleted' : 'manifest.deleted') : (action ?? '');
    const registry = str(request.host);
    const repository = str(target.repository);
    const digest = str(target.digest);
    return {
      id: str(event.id) ?? '',
      type,
      registry,
      repository,
      tag,
      digest,
      mediaType: str(target.mediaType),
      reference: registry ? imageReference(registry, repository, tag, digest) : null,
      previousDigest: null,
      sentAt: date(json.sentAt),
      format: 'distribution',
      raw: json,
    };
  }
  if (typeof json.id === 'string' && typeof json.type === 'string') {
    return {
      id: json.id,
      type: json.type,
      registry: str(json.registry),
      repository: str(json.repository),
      tag: str(json.tag),
      digest: str(json.digest),
      mediaType: str(json.mediaType),
      reference: str(json.reference),
      previousDigest: str(json.previousDigest),
      sentAt: date(json.sentAt),
      format: 'native',
      raw: json,
    };
  }
  return null;
}

function emptyReceived(id: string, type: string, format: WebhookFormat, raw: unknown): ReceivedEvent {
  return {
    id,
    type,
    registry: null,
    repository: null,
    tag: null,
    digest: null,
    mediaType: null,
    reference: null,
    previousDigest: null,
    sentAt: null,
    format,
    raw,
  };
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function date(value: unknown): Date | null {
  if (typeof value !== 'string') return null;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? null : parsed;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
