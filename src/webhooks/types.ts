/**
 * The vocabulary of webhooks: event types a subscription may ask for, delivery formats,
 * the native payload, subscriptions, deliveries and their attempt log.
 */
import { EVENT_TYPES, type EventType } from '../registry/events.js';

/** Pulls are not in the transactional outbox (nothing changed); they are opt-in and best effort. */
export const PULL_EVENT_TYPE = 'manifest.pulled';

/** What a subscription may list in `events`. */
export const SUBSCRIBABLE_EVENT_TYPES = [...EVENT_TYPES, PULL_EVENT_TYPE] as const;
export type SubscribableEventType = (typeof SUBSCRIBABLE_EVENT_TYPES)[number];

/** Sent when a subscription is tested; never filtered. */
export const PING_EVENT_TYPE = 'ping';
export type WebhookEventType = SubscribableEventType | typeof PING_EVENT_TYPE;

/** A subscription with no `events` gets these: every change, but not pulls. */
export const DEFAULT_EVENT_TYPES: readonly EventType[] = EVENT_TYPES;

export const WEBHOOK_FORMATS = ['native', 'distribution', 'cloudevents', 'dockerhub'] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

/**
 * `active`: events are delivered. `paused`: events are queued (deliveries recorded, not sent)
 * and go out, in order, once active again. `disabled`: events recorded meanwhile are dropped
 * (no delivery is ever made for them); deliveries queued before stay queued.
 */
export const SUBSCRIPTION_STATES = ['active', 'paused', 'disabled'] as const;
export type SubscriptionState = (typeof SUBSCRIPTION_STATES)[number];

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/**
 * The native payload, as stored with a delivery. Every field but `sentAt` is fixed when the
 * event is fanned out, so every attempt carries the same id, timestamp and content.
 */
export interface EventPayload {
  /** The event id: the same on every attempt and for every subscription. */
  id: string;
  type: WebhookEventType;
  /** When the event happened (ISO 8601). */
  timestamp: string;
  /** The registry's public host (host[:port]), as clients name it in image references. */
  registry: string;
  repository: string | null;
  tag: string | null;
  digest: string | null;
  mediaType: string | null;
  size: number | null;
  /** For an index: the platforms of its child manifests. Null for anything else. */
  platforms: Platform[] | null;
  /** Ready to pull: `host/repo:tag@sha256:…` (or without the parts the event lacks). */
  reference: string | null;
  actor: { name: string; kind: string };
  /** For `tag.updated`: the digest the tag pointed at before. */
  previousDigest: string | null;
}

/** The payload as sent: the stored one plus the time of this attempt, covered by the signature. */
export interface SentPayload extends EventPayload {
  /** When this attempt was sent (ISO 8601); receivers refuse old ones to stop replays. */
  sentAt: string;
}

export interface Subscription {
  id: string;
  url: string;
  /** The HMAC key. Never returned by the API after creation. */
  secret: string;
  /** Empty: {@link DEFAULT_EVENT_TYPES}. */
  events: SubscribableEventType[];
  /** Repository patterns; empty matches every repository. */
  repositories: string[];
  /** Tag patterns; empty matches every event, otherwise only events whose tag matches. */
  tags: string[];
  /** Extra request headers (for receivers that check a static token). */
  headers: Record<string, string>;
  format: WebhookFormat;
  state: SubscriptionState;
  /** `config`: declared in the config file, read-only through the API. */
  source: 'api' | 'config';
  /** Outbox position when the subscription was created: older events are not delivered to it. */
  startSeq: number;
  createdAt: number;
  updatedAt: number;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface DeliveryAttempt {
  attempt: number;
  /** Milliseconds since the epoch. */
  at: number;
  status: number | null;
  latencyMs: number;
  error: string | null;
  /** The start of the response body (at most `maxResponseBytes`). */
  responseBody: string | null;
}

export interface Delivery {
  id: number;
  subscriptionId: string;
  eventId: string;
  eventType: WebhookEventType;
  repository: string | null;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: number;
  /** When the delivery is given up; counted from its first attempt (provisional until then). */
  expiresAt: number;
  /** The first attempt since it was queued or redelivered: the start of its `maxAgeMs`; null before it. */
  firstAttemptAt: number | null;
  createdAt: number;
  updatedAt: number;
  lastStatus: number | null;
  lastError: string | null;
  payload: EventPayload;
  context: DeliveryContext;
}

/**
 * What a delivery keeps beside its payload for the formats that say more than the native one:
 * the scheme of the registry URL the event names, and the request that made the change
 * (distribution's `request` record). Fixed at fan-out, like the payload.
 */
export interface DeliveryContext {
  scheme: 'http' | 'https';
  /** Null for the registry's own changes (retention, GC) and for pings. */
  request: { id: string; addr: string | null; userAgent: string | null; method: string } | null;
}

export const DEPLOY_STATUSES = ['running', 'succeeded', 'failed'] as const;
export type DeployStatus = (typeof DEPLOY_STATUSES)[number];

/** The latest report of one agent about the deploy of one delivery (docs/webhooks.md, "Deploy results"). */
export interface DeployReport {
  agent: string;
  status: DeployStatus;
  /** The agent's run attempt, 1-based. */
  attempt: number;
  exitCode: number | null;
  durationMs: number | null;
  /** The last ≤4096 characters of the command's combined output. */
  output: string | null;
  /** Milliseconds since the epoch, as the agent reported them. */
  startedAt: number;
  finishedAt: number | null;
  /** When the agent sent this report (its clock) and when the registry recorded it (ours). */
  sentAt: number;
  reportedAt: number;
  /** How many reports this agent sent about this delivery. */
  reports: number;
}

export interface DeliveryWithAttempts extends Delivery {
  log: DeliveryAttempt[];
}
