/**
 * The webhook tables' rows as both database backends read them (same columns on SQLite and
 * PostgreSQL), and how each becomes the record the WebhookStore port speaks.
 */
import type { DueDelivery, NewSubscription } from '../webhooks/store.js';
import type { Delivery, DeliveryContext, DeliveryState, DeployReport, DeployStatus, EventPayload, Subscription, WebhookEventType } from '../webhooks/types.js';

export interface SubscriptionRow {
  id: string;
  url: string;
  secret: string;
  events: string;
  repositories: string;
  tags: string;
  headers: string;
  format: Subscription['format'];
  state: Subscription['state'];
  source: Subscription['source'];
  start_seq: number;
  created_at: number;
  updated_at: number;
}

export interface DeliveryRow {
  id: number;
  subscription_id: string;
  event_id: string;
  event_type: WebhookEventType;
  repository: string | null;
  payload: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: number;
  expires_at: number;
  first_attempt_at: number | null;
  created_at: number;
  updated_at: number;
  last_status: number | null;
  last_error: string | null;
  context: string | null;
}

export interface AttemptRow {
  attempt: number;
  at: number;
  status: number | null;
  latency_ms: number;
  error: string | null;
  response_body: string | null;
}

export const SUBSCRIPTION_COLUMNS = 'id, url, secret, events, repositories, tags, headers, format, state, source, start_seq, created_at, updated_at';
export const DELIVERY_COLUMNS =
  'id, subscription_id, event_id, event_type, repository, payload, state, attempts, next_attempt_at, expires_at, first_attempt_at, created_at, updated_at, last_status, last_error, context';

/** A delivery's columns (d.) and its subscription's (s., as s_…), for the due queries. */
export const DUE_COLUMNS = [...DELIVERY_COLUMNS.split(', ').map((c) => `d.${c}`), ...SUBSCRIPTION_COLUMNS.split(', ').map((c) => `s.${c} AS s_${c}`)].join(', ');

export type DueRow = DeliveryRow & { [K in keyof SubscriptionRow as `s_${K}`]: SubscriptionRow[K] };

/** A delivery row joined with its subscription's columns (prefixed `s_`). */
export function toDue(row: DueRow): DueDelivery {
  return {
    delivery: toDelivery(row),
    subscription: toSubscription({
      id: row.s_id,
      url: row.s_url,
      secret: row.s_secret,
      events: row.s_events,
      repositories: row.s_repositories,
      tags: row.s_tags,
      headers: row.s_headers,
      format: row.s_format,
      state: row.s_state,
      source: row.s_source,
      start_seq: row.s_start_seq,
      created_at: row.s_created_at,
      updated_at: row.s_updated_at,
    }),
  };
}

export function definedOnly<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined)) as Partial<T>;
}

export function toSubscription(row: SubscriptionRow): Subscription {
  return {
    id: row.id,
    url: row.url,
    secret: row.secret,
    events: JSON.parse(row.events) as Subscription['events'],
    repositories: JSON.parse(row.repositories) as string[],
    tags: JSON.parse(row.tags) as string[],
    headers: JSON.parse(row.headers) as Record<string, string>,
    format: row.format,
    state: row.state,
    source: row.source,
    startSeq: row.start_seq,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A subscription's settings as the columns url … state hold them, in that order (insert and update share it). */
export function settingsColumns(subscription: Omit<NewSubscription, 'id' | 'source'>): unknown[] {
  const { url, secret, events, repositories, tags, headers, format, state } = subscription;
  return [url, secret, JSON.stringify(events), JSON.stringify(repositories), JSON.stringify(tags), JSON.stringify(headers), format, state];
}

export function toDelivery(row: DeliveryRow): Delivery {
  return {
    id: row.id,
    subscriptionId: row.subscription_id,
    eventId: row.event_id,
    eventType: row.event_type,
    repository: row.repository,
    state: row.state,
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    expiresAt: row.expires_at,
    firstAttemptAt: row.first_attempt_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastStatus: row.last_status,
    lastError: row.last_error,
    payload: JSON.parse(row.payload) as EventPayload,
    // Deliveries recorded before contexts were kept: no request record, the scheme of plain HTTP.
    context: row.context === null ? { scheme: 'http', request: null } : (JSON.parse(row.context) as DeliveryContext),
  };
}

export interface DeployRow {
  delivery_id: number;
  agent: string;
  status: DeployStatus;
  attempt: number;
  exit_code: number | null;
  duration_ms: number | null;
  output: string | null;
  started_at: number;
  finished_at: number | null;
  sent_at: number;
  reported_at: number;
  reports: number;
}

export const REPORT_COLUMNS = 'status, attempt, exit_code, duration_ms, output, started_at, finished_at, sent_at, reported_at';

export function toDeployReport(row: DeployRow): DeployReport {
  return {
    agent: row.agent,
    status: row.status,
    attempt: row.attempt,
    exitCode: row.exit_code,
    durationMs: row.duration_ms,
    output: row.output,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    sentAt: row.sent_at,
    reportedAt: row.reported_at,
    reports: row.reports,
  };
}
