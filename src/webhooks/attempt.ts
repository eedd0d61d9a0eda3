/**
 * One delivery attempt: format the stored payload for the subscription, sign it, post it,
 * and decide what happens next (delivered, retry later with backoff, or failed).
 */
import type { WebhooksConfig } from './config.js';
import { deployCallbackUrl } from './deploys.js';
import { formatBody, type FormatOptions } from './formats.js';
import type { SendResult, WebhookSender } from './outbound.js';
import {
  ATTEMPT_HEADER,
  DELIVERY_HEADER,
  DEPLOY_CALLBACK_HEADER,
  EVENT_ID_HEADER,
  EVENT_TYPE_HEADER,
  FLUX_SIGNATURE_HEADER,
  HUB_SIGNATURE_HEADER,
  SIGNATURE_HEADER,
  sign,
  signTimestamped,
  TIMESTAMP_HEADER,
  TIMESTAMP_SIGNATURE_HEADER,
} from './signing.js';
import type { AttemptOutcome, WebhookStore } from './store.js';
import type { Delivery, DeliveryAttempt, Subscription } from './types.js';

export const USER_AGENT = 'harbormaster-registry-webhooks/1';

/** Headers a subscription may not set: the ones the registry writes itself. */
export const RESERVED_HEADERS = new Set(
  [
    'content-type',
    'content-length',
    'content-encoding',
    'transfer-encoding',
    'connection',
    'host',
    'user-agent',
    SIGNATURE_HEADER,
    FLUX_SIGNATURE_HEADER,
    HUB_SIGNATURE_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    DELIVERY_HEADER,
    ATTEMPT_HEADER,
    TIMESTAMP_HEADER,
    TIMESTAMP_SIGNATURE_HEADER,
    DEPLOY_CALLBACK_HEADER,
  ].map((name) => name.toLowerCase()),
);

export interface AttemptResult {
  result: SendResult;
  attempt: DeliveryAttempt;
}

/** Sends the next attempt of a delivery; never throws for what the receiver did. */
export async function sendAttempt(
  sender: WebhookSender,
  subscription: Subscription,
  delivery: Delivery,
  formatting: FormatSettings,
  now: number,
): Promise<AttemptResult> {
  const attemptNumber = delivery.attempts + 1;
  const sentAt = new Date(now);
  const callbackUrl = deployCallbackUrl(delivery.context.scheme, delivery.payload.registry, subscription.id, delivery.id);
  const formatOptions: FormatOptions = { ...formatting, scheme: delivery.context.scheme, request: delivery.context.request, callbackUrl };
  const { contentType, body } = formatBody(subscription.format, delivery.payload, sentAt, formatOptions);
  const signature = sign(subscription.secret, body);
  const headers: Record<string, string> = {
    ...subscription.headers,
    'Content-Type': contentType,
    'User-Agent': USER_AGENT,
    [EVENT_TYPE_HEADER]: delivery.eventType,
    [EVENT_ID_HEADER]: delivery.eventId,
    [DELIVERY_HEADER]: String(delivery.id),
    [ATTEMPT_HEADER]: String(attemptNumber),
    [TIMESTAMP_HEADER]: String(Math.floor(now / 1000)),
    [TIMESTAMP_SIGNATURE_HEADER]: signTimestamped(subscription.secret, now / 1000, body),
    [SIGNATURE_HEADER]: signature,
    [FLUX_SIGNATURE_HEADER]: signature,
    [HUB_SIGNATURE_HEADER]: signature,
    [DEPLOY_CALLBACK_HEADER]: callbackUrl,
  };
  const result = await sender.post(subscription.url, headers, body);
  return {
    result,
    attempt: {
      attempt: attemptNumber,
      at: now,
      status: result.status,
      latencyMs: result.latencyMs,
      error: result.error,
      responseBody: result.responseBody,
    },
  };
}

export type BackoffConfig = Pick<WebhooksConfig, 'initialBackoffMs' | 'maxBackoffMs'>;

/**
 * Delay before retry number `attempt` (1 = the first retry): the initial delay doubled per
 * attempt, capped, with "equal jitter" (between half and all of it) so that many failed
 * deliveries do not all come back at the same instant.
 */
export function backoffDelay(attempt: number, config: BackoffConfig, random: () => number = Math.random): number {
  const exponential = Math.min(config.maxBackoffMs, config.initialBackoffMs * 2 ** Math.min(attempt - 1, 40));
  return Math.round(exponential / 2 + (random() * exponential) / 2);
}

/** What an attempt's result means for its delivery. */
export function decideOutcome(
  delivery: Delivery,
  attempt: DeliveryAttempt,
  result: SendResult,
  config: BackoffConfig,
  now: number,
  random: () => number = Math.random,
): AttemptOutcome {
  if (result.error === null) return { attempt, state: 'delivered', nextAttemptAt: now };
  if (!result.retryable || now >= delivery.expiresAt) return { attempt, state: 'failed', nextAttemptAt: now };
  let delay = backoffDelay(attempt.attempt, config, random);
  if (result.retryAfterSeconds !== null) delay = Math.max(delay, Math.min(result.retryAfterSeconds * 1000, config.maxBackoffMs));
  // The last try happens at the deadline, then the delivery is given up.
  return { attempt, state: 'pending', nextAttemptAt: Math.min(now + delay, delivery.expiresAt) };
}

/** What formats need beside the delivery: the CloudEvents type prefix, this node's source record. */
export type FormatSettings = Pick<FormatOptions, 'cloudEventsTypePrefix' | 'source'>;

export interface AttemptSettings extends BackoffConfig {
  requestTimeoutMs: number;
  maxAgeMs: number;
}

/**
 * How long a claim holds a delivery off: as long as the attempt can take (its timeout), and as
 * long again plus a second for recording its outcome on a loaded machine; past that the
 * process is taken to have died.
 */
export function claimHold(startedAt: number, settings: Pick<AttemptSettings, 'requestTimeoutMs'>): number {
  return startedAt + 2 * settings.requestTimeoutMs + 1_000;
}

export interface RunAttemptOptions {
  /** Makes any failure final (pings). */
  final?: boolean;
  random?: () => number;
  /** The attempt was already claimed, at this instant (the store's fast path did it). */
  claimedAt?: number;
  /** Records the outcome instead of `store.recordAttempt` (to continue the lane in the same transaction). */
  record?: (outcome: AttemptOutcome) => Promise<void>;
}

/**
 * One whole attempt: claim it in the store (counted and logged before anything is sent), send
 * it, decide and record the outcome. Null when another dispatcher claimed the delivery first.
 */
export async function runAttempt(
  store: Pick<WebhookStore, 'beginAttempt' | 'recordAttempt'>,
  sender: WebhookSender,
  subscription: Subscription,
  delivery: Delivery,
  settings: AttemptSettings,
  formatting: FormatSettings,
  now: () => number,
  options: RunAttemptOptions = {},
): Promise<AttemptOutcome | null> {
  const startedAt = options.claimedAt ?? now();
  if (options.claimedAt === undefined && !(await store.beginAttempt(delivery.id, delivery.attempts + 1, startedAt, claimHold(startedAt, settings), settings.maxAgeMs))) return null;
  const { result, attempt } = await sendAttempt(sender, subscription, delivery, formatting, startedAt);
  const expiresAt = options.final ? 0 : delivery.firstAttemptAt === null ? startedAt + settings.maxAgeMs : delivery.expiresAt;
  const outcome = decideOutcome({ ...delivery, expiresAt }, attempt, result, settings, now(), options.random);
  await (options.record ? options.record(outcome) : store.recordAttempt(delivery.id, outcome));
  return outcome;
}
