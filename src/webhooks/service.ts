/**
 * Webhooks as the rest of the application sees them: subscription management (the admin API
 * and the CLI call these), the delivery log, redelivery, pings, pull events, and the
 * dispatcher's lifecycle. Built once per registry by {@link createWebhooks}.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import type { Logger } from 'pino';
import { z } from 'zod';
import { generateSecret } from '../auth/secrets.js';
import type { Config } from '../config/schema.js';
import type { MetadataBackend } from '../metadata/backend.js';
import type { MetadataStore, RequestContext } from '../registry/ports.js';
import { runAttempt } from './attempt.js';
import type { StaticSubscriptionConfig, WebhooksConfig } from './config.js';
import { Dispatcher, redactedUrl } from './dispatcher.js';
import { DeployReports, type WithDeploys } from './deploy-reports.js';
import { PullEvents, type PullRecord } from './pull-events.js';
import { syncStaticSubscriptions } from './static-subscriptions.js';
import { readTimeline, type TimelinePage, type TimelineQuery, type TimelineViewer } from './timeline.js';
import { WebhookError } from './errors.js';
import { PatternError } from './filters.js';
import type { SourceRecord } from './formats.js';
import { EventOrigins } from './origin.js';
import { DestinationPolicy, DestinationRefusedError, WebhookSender } from './outbound.js';
import { keepRedacted, redactHeaders, redactUrl } from './redaction.js';
import type { DeliveryStats, WebhookStore } from './store.js';
import { subscriptionInputSchema, subscriptionPatchSchema, validateSubscriptionPatterns } from './subscriptions.js';
import {
  PING_EVENT_TYPE,
  type Delivery,
  type DeliveryAttempt,
  type DeliveryState,
  type DeliveryWithAttempts,
  type EventPayload,
  type Subscription,
} from './types.js';

export { WebhookError, type WebhookErrorKind } from './errors.js';
export type { PullRecord } from './pull-events.js';

/** A subscription as the API shows it: everything but the secret; `active` is `state === 'active'` (the older field). */
export type PublicSubscription = Omit<Subscription, 'secret' | 'startSeq' | 'createdAt' | 'updatedAt'> & {
  active: boolean;
  createdAt: string;
  updatedAt: string;
};

export interface PingResult {
  delivery: Delivery;
  attempt: DeliveryAttempt;
  ok: boolean;
}

export interface WebhooksOptions {
  /** Where subscriptions, deliveries and the outbox cursor live (the metadata backend's webhook store). */
  store: WebhookStore;
  metadata: Pick<MetadataStore, 'readEvents' | 'getManifest'>;
  config: WebhooksConfig;
  logger: Logger;
  /** Which registry host and scheme each event names (http.publicUrl, the request's host, allowedHosts). */
  origins: EventOrigins;
  /** The configured listen port (this node's `source.addr` until the server says which it bound). */
  listenPort: string;
  now?: () => number;
}

export class WebhookService {
  readonly store: WebhookStore;
  readonly sender: WebhookSender;
  readonly dispatcher: Dispatcher;
  readonly policy: DestinationPolicy;
  readonly origins: EventOrigins;
  /** Deploy reports posted back by receivers, and their attachment to deliveries. */
  readonly deploys: DeployReports;
  private readonly now: () => number;
  private readonly pulls: PullEvents;
  /** This node as distribution's `source` record names it: `<hostname>:<port>` and an id per process start. */
  private readonly formatting: { cloudEventsTypePrefix: string; source: SourceRecord };

  constructor(private readonly options: WebhooksOptions) {
    this.store = options.store;
    this.policy = new DestinationPolicy(options.config);
    this.sender = new WebhookSender(this.policy, {
      timeoutMs: options.config.requestTimeoutMs,
      maxResponseBytes: options.config.maxResponseBytes,
      followRedirects: options.config.followRedirects,
    });
    this.now = options.now ?? Date.now;
    this.origins = options.origins;
    this.formatting = {
      cloudEventsTypePrefix: options.config.cloudEventsTypePrefix,
      source: { addr: sourceAddress(options.listenPort), instanceID: randomUUID() },
    };
    this.deploys = new DeployReports(this.store, this.now);
    this.pulls = new PullEvents({
      store: this.store,
      origins: this.origins,
      logger: options.logger,
      now: this.now,
      maxAgeMs: options.config.maxAgeMs,
      queued: () => this.dispatcher.notify(),
    });
    this.dispatcher = new Dispatcher({
      store: this.store,
      metadata: options.metadata,
      sender: this.sender,
      config: options.config,
      logger: options.logger.child({ component: 'webhooks' }),
      origins: this.origins,
      formatting: this.formatting,
      now: this.now,
    });
  }

  /** Once the server listens: the address that names the registry's own events when nothing better does, and this node's port. */
  listening(url: string): void {
    this.origins.listening(url);
    this.formatting.source.addr = sourceAddress(new URL(url).port || (url.startsWith('https:') ? '443' : '80'));
  }

  /** Brings config-declared subscriptions in step with the config, then starts delivering (when enabled). */
  async start(): Promise<void> {
    await this.syncStaticSubscriptions(this.options.config.subscriptions);
    await this.pulls.refresh();
    if (this.options.config.enabled) this.dispatcher.start();
  }

  /** Stops the dispatcher (waiting for deliveries in flight) and closes outbound connections. */
  async stop(): Promise<void> {
    await this.dispatcher.stop();
    this.sender.close();
  }

  /** Figures for metrics (null when the store keeps none): deliveries by state, delivery lag, outbox backlog. */
  async deliveryStats(): Promise<DeliveryStats | null> {
    return this.store.deliveryStats ? this.store.deliveryStats(this.now()) : null;
  }

  /** Wakes the dispatcher: the registry just recorded a change. */
  notify(): void {
    this.dispatcher.notify();
  }

  async listSubscriptions(): Promise<PublicSubscription[]> {
    return (await this.store.listSubscriptions()).map(toPublic);
  }

  async getSubscription(id: string): Promise<PublicSubscription> {
    return toPublic(await this.existing(id));
  }

  /** Creates a subscription; the response is the only place its secret is ever shown. */
  async createSubscription(input: unknown): Promise<PublicSubscription & { secret: string }> {
    const fields = parse(subscriptionInputSchema, input);
    this.checkFields(fields);
    const id = fields.id ?? `wh_${randomBytes(8).toString('hex')}`;
    if (await this.store.getSubscription(id)) throw new WebhookError('conflict', `a subscription with id ${id} exists`);
    const secret = fields.secret ?? generateSecret();
    const created = await this.store.createSubscription({ ...fields, id, secret, source: 'api' }, this.now());
    this.pulls.invalidate();
    return { ...toPublic(created), secret };
  }

  async updateSubscription(id: string, input: unknown): Promise<PublicSubscription> {
    const current = await this.existing(id);
    // What the API showed redacted, sent back unchanged, keeps the stored value.
    const patch = keepRedacted(parse(subscriptionPatchSchema, input), current);
    if (current.source === 'config') throw readOnly(id);
    this.checkFields(patch);
    const updated = await this.store.updateSubscription(id, patch, this.now());
    if (!updated) throw notFound(id);
    this.pulls.invalidate();
    this.dispatcher.notify();
    return toPublic(updated);
  }

  async deleteSubscription(id: string): Promise<void> {
    const current = await this.existing(id);
    if (current.source === 'config') throw readOnly(id);
    await this.store.deleteSubscription(id);
    this.pulls.invalidate();
  }

  /** Sends a `ping` right away (one attempt, no retry) and logs it as a delivery; it names the host `request` addressed. */
  async ping(id: string, request?: RequestContext): Promise<PingResult> {
    const subscription = await this.existing(id);
    const origin = this.origins.of(request);
    const payload: EventPayload = {
      id: randomUUID(),
      type: PING_EVENT_TYPE,
      timestamp: new Date(this.now()).toISOString(),
      registry: origin.host,
      repository: null,
      tag: null,
      digest: null,
      mediaType: null,
      size: null,
      platforms: null,
      reference: null,
      actor: { name: 'registry', kind: 'system' },
      previousDigest: null,
    };
    // Sent here, not by the dispatcher: not due until well after this attempt ends (were the
    // process to die meanwhile, the dispatcher would send it once, late, and not retry it).
    const now = this.now();
    const delivery = await this.store.insertDelivery(
      {
        subscriptionId: id,
        eventId: payload.id,
        eventType: PING_EVENT_TYPE,
        repository: null,
        payload,
        context: { scheme: origin.scheme, request: null },
        dueAt: now + this.options.config.requestTimeoutMs + 60_000,
      },
      now,
      now,
    );
    if (!delivery) throw notFound(id);
    // A ping is a test: its outcome is final whatever it was.
    const outcome = await runAttempt(this.store, this.sender, subscription, delivery, this.options.config, this.formatting, this.now, { final: true });
    if (!outcome) throw new Error(`ping delivery ${delivery.id} was claimed by another dispatcher`);
    const { attempt } = outcome;
    return { delivery: { ...delivery, state: outcome.state, attempts: attempt.attempt, lastStatus: attempt.status, lastError: attempt.error }, attempt, ok: outcome.state === 'delivered' };
  }

  /** A subscription's deliveries, newest first, with their deploy reports. */
  async listDeliveries(id: string, query: { state?: DeliveryState; limit?: number; before?: number } = {}): Promise<Array<WithDeploys<Delivery>>> {
    await this.existing(id);
    return this.deploys.attach(await this.store.listDeliveries({ subscriptionId: id, state: query.state, limit: clampLimit(query.limit), beforeId: query.before }));
  }

  /** Failed deliveries of every subscription, newest first. */
  async failedDeliveries(query: { limit?: number; before?: number } = {}): Promise<Array<WithDeploys<Delivery>>> {
    return this.deploys.attach(await this.store.listDeliveries({ state: 'failed', limit: clampLimit(query.limit), beforeId: query.before }));
  }

  /** One delivery with its attempt log and deploy reports. */
  async getDelivery(id: string, deliveryId: number): Promise<WithDeploys<DeliveryWithAttempts>> {
    const delivery = await this.store.getDelivery(deliveryId);
    if (!delivery || delivery.subscriptionId !== id) throw new WebhookError('not_found', `subscription ${id} has no delivery ${deliveryId}`);
    const [withDeploys] = await this.deploys.attach([delivery]);
    return withDeploys!;
  }

  /** Queues a delivery again, due now, with the same event id; its log keeps the earlier attempts. */
  async redeliver(id: string, deliveryId: number): Promise<Delivery> {
    await this.getDelivery(id, deliveryId);
    const now = this.now();
    const requeued = await this.store.requeue(deliveryId, now, now + this.options.config.maxAgeMs);
    if (!requeued) throw new WebhookError('not_found', `subscription ${id} has no delivery ${deliveryId}`);
    this.dispatcher.notify();
    return requeued;
  }

  /**
   * Queues again, oldest first, the failed (or delivered) deliveries of one subscription or all,
   * created in [since, until): after an outage, one call sends the whole backlog again, in order.
   */
  async redeliverMatching(input: unknown): Promise<{ redelivered: number; deliveries: number[] }> {
    const query = parse(bulkRedeliverySchema, input);
    if (query.subscriptionId !== undefined) await this.existing(query.subscriptionId);
    const now = this.now();
    const ids = await this.store.requeueMatching(
      { ...query, since: query.since === undefined ? undefined : Date.parse(query.since), until: query.until === undefined ? undefined : Date.parse(query.until) },
      now,
      now + this.options.config.maxAgeMs,
    );
    if (ids.length > 0) this.dispatcher.notify();
    return { redelivered: ids.length, deliveries: ids };
  }

  /**
   * Queues any outbox event for a subscription, by event id, whether or not it matched the
   * subscription's filters or predates it: its delivery is requeued if it has one, created otherwise.
   */
  async redeliverEvent(id: string, eventId: string): Promise<Delivery> {
    await this.existing(id);
    const existing = await this.store.findDelivery(id, eventId);
    if (existing) return this.redeliver(id, existing.id);
    const seq = await this.store.findEventSeq(eventId);
    const [event] = seq === null ? [] : await this.options.metadata.readEvents(seq - 1, 1);
    if (!event || event.id !== eventId) throw new WebhookError('not_found', `no event ${eventId} in the outbox`);
    const now = this.now();
    const delivery = await this.store.insertDelivery(
      { subscriptionId: id, eventId, eventType: event.type, repository: event.repository, ...(await this.dispatcher.payloadOf(event)) },
      now,
      now + this.options.config.maxAgeMs,
    );
    if (!delivery) throw notFound(id);
    this.dispatcher.notify();
    return delivery;
  }

  /** The events timeline: outbox events newest first with their deploy results (and deliveries, for admins). */
  timeline(query: TimelineQuery, viewer: TimelineViewer): Promise<TimelinePage> {
    return readTimeline(this.store, this.deploys, query, viewer);
  }

  /** Whether any subscription asks for pulls (cheap: on the hot path of every manifest GET). */
  wantsPulls(): boolean {
    return this.pulls.wanted();
  }

  /** Queues `manifest.pulled` for the subscriptions that asked for it (best effort: not in the outbox). */
  recordPull(pull: PullRecord): Promise<void> {
    return this.pulls.record(pull);
  }

  /**
   * Makes the config-declared subscriptions exist as declared (static-subscriptions.ts); each
   * is checked as an API-created one would be.
   */
  async syncStaticSubscriptions(declared: StaticSubscriptionConfig[]): Promise<void> {
    await syncStaticSubscriptions(this.store, declared, this.now(), (fields) => {
      this.checkFields(fields);
      parse(subscriptionPatchSchema, { ...fields });
    });
    this.pulls.invalidate();
  }

  private async existing(id: string): Promise<Subscription> {
    const subscription = await this.store.getSubscription(id);
    if (!subscription) throw notFound(id);
    return subscription;
  }

  /** Checks what the schema cannot: patterns compile, and the destination is allowed. */
  private checkFields(fields: { url?: string; repositories?: string[]; tags?: string[] }): void {
    try {
      validateSubscriptionPatterns(fields);
    } catch (error) {
      if (error instanceof PatternError) throw new WebhookError('invalid', error.message, { pattern: error.pattern });
      throw error;
    }
    if (fields.url !== undefined) {
      try {
        this.policy.checkUrl(new URL(fields.url));
      } catch (error) {
        if (error instanceof DestinationRefusedError) throw new WebhookError('invalid', error.message, { url: redactedUrl(fields.url) });
        throw error;
      }
    }
  }
}

/** The webhook service of a registry configuration, over its metadata backend (the server's and the CLI's). */
export function createWebhooks(
  config: Pick<Config, 'webhooks' | 'http'>,
  backend: Pick<MetadataBackend, 'metadata' | 'webhooks'>,
  logger: Logger,
): WebhookService {
  return new WebhookService({
    store: backend.webhooks,
    metadata: backend.metadata,
    config: config.webhooks,
    logger,
    listenPort: config.http.addr.slice(config.http.addr.lastIndexOf(':') + 1),
    origins: new EventOrigins({
      publicUrl: config.http.publicUrl,
      allowedHosts: config.http.allowedHosts,
      listenAddress: config.http.addr,
      tls: Boolean(config.http.tls.certificate),
    }),
  });
}

/** `<hostname>:<port>`, as distribution fills its `source.addr`. */
function sourceAddress(port: string): string {
  return `${os.hostname()}:${port}`;
}

/** Header values and URL credentials or query values are write-only: shown as `***` (redaction.ts). */
function toPublic(subscription: Subscription): PublicSubscription {
  const { secret: _secret, startSeq: _startSeq, createdAt, updatedAt, ...rest } = subscription;
  return {
    ...rest,
    url: redactUrl(rest.url),
    headers: redactHeaders(rest.headers),
    active: rest.state === 'active',
    createdAt: new Date(createdAt).toISOString(),
    updatedAt: new Date(updatedAt).toISOString(),
  };
}

function parse<T extends z.ZodType>(schema: T, input: unknown): z.infer<T> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
  const first = issues[0];
  throw new WebhookError('invalid', first ? `${first.path || 'body'}: ${first.message}` : 'invalid subscription', { issues });
}

/** What a bulk redelivery selects: by subscription, state (failed by default) and creation time. */
const bulkRedeliverySchema = z
  .object({
    subscriptionId: z.string().min(1).max(128).optional(),
    state: z.enum(['failed', 'delivered']).default('failed'),
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    /** At most this many per call (oldest first); call again for more. */
    limit: z.number().int().min(1).max(10_000).default(1_000),
  })
  .strict()
  .refine((q) => q.since === undefined || q.until === undefined || Date.parse(q.since) < Date.parse(q.until), { message: 'since must be before until', path: ['until'] });

function notFound(id: string): WebhookError {
  return new WebhookError('not_found', `no webhook subscription ${id}`);
}

function readOnly(id: string): WebhookError {
  return new WebhookError('read_only', `subscription ${id} is declared in the config file; change it there`);
}

function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return 50;
  return Math.max(1, Math.min(500, Math.floor(limit)));
}

