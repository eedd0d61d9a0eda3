/**
 * The dispatcher: turns new outbox events into deliveries for the subscriptions they match
 * (remembering how far it got, in the database, so a restart resumes), and sends due
 * deliveries with a bounded number in flight in total and per endpoint. Within one
 * subscription and repository only the oldest pending delivery is ever sent, so a later
 * event never overtakes an earlier one, even across retries and restarts.
 *
 * It wakes on {@link Dispatcher.notify} (called after every change the registry records) and
 * otherwise polls every `pollIntervalMs`, which also drives retries.
 */
import type { Logger } from 'pino';
import type { RegistryEvent } from '../registry/events.js';
import type { MetadataStore } from '../registry/ports.js';
import { claimHold, runAttempt, type FormatSettings } from './attempt.js';
import type { WebhooksConfig } from './config.js';
import { indexPlatforms, isIndexMediaType, payloadFromEvent } from './formats.js';
import { deliveryContextOf, type EventOrigins } from './origin.js';
import type { WebhookSender } from './outbound.js';
import type { AttemptOutcome, DueDelivery, NewDelivery, WebhookStore } from './store.js';
import { compileSubscription, type CompiledSubscription } from './subscriptions.js';
import type { Delivery, DeliveryContext, EventPayload, Subscription } from './types.js';

/** Outbox events read per query, and queries per wake-up (the rest waits for the next one). */
const OUTBOX_BATCH = 200;
const OUTBOX_BATCHES_PER_TICK = 10;
const PRUNE_EVERY_MS = 10 * 60_000;

export interface DispatcherDependencies {
  store: WebhookStore;
  metadata: Pick<MetadataStore, 'readEvents' | 'getManifest'>;
  sender: WebhookSender;
  config: WebhooksConfig;
  logger: Logger;
  /** Which registry host and scheme an event names, given the request behind it. */
  origins: EventOrigins;
  /** The CloudEvents prefix and this node's source record, for formatting. */
  formatting: FormatSettings;
  now?: () => number;
  random?: () => number;
}

export class Dispatcher {
  private readonly store: WebhookStore;
  private readonly config: WebhooksConfig;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly inFlight = new Map<number, Promise<void>>();
  private readonly perEndpoint = new Map<string, number>();
  private readonly compiled = new Map<string, { updatedAt: number; compiled: CompiledSubscription }>();
  /** Outcomes waiting for this turn's batch (see {@link record}). */
  private readonly outcomes: PendingOutcome[] = [];
  private started = false;
  /** A due delivery was held back by an in-flight limit: the next completion runs a full pass. */
  private capped = false;
  private scheduled = false;
  private again = false;
  private tick: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastPrune = 0;

  constructor(private readonly deps: DispatcherDependencies) {
    this.store = deps.store;
    this.config = deps.config;
    this.logger = deps.logger;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.notify();
  }

  /** Asks for a pass soon (coalesced): new events to fan out, or a delivery finished. */
  notify(): void {
    if (!this.started) return;
    if (this.tick) {
      this.again = true;
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  /** Stops waking up and waits for the deliveries in flight (each bounded by the request timeout). */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.tick;
    // A delivery finishing now may have claimed its lane's next one, which is then sent too.
    for (let round = 0; this.inFlight.size > 0 && round < 1_000; round++) await Promise.allSettled([...this.inFlight.values()]);
  }

  /** One pass: fan out new events, start due deliveries, prune old log entries now and then. */
  async runOnce(): Promise<void> {
    await this.fanOut();
    await this.dispatchDue();
    await this.pruneIfDue();
  }

  private async run(): Promise<void> {
    if (!this.started || this.tick) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tick = (async () => {
      let passes = 0;
      do {
        this.again = false;
        try {
          await this.runOnce();
        } catch (error) {
          this.logger.error({ err: error }, 'webhook dispatcher pass failed');
        }
      } while (this.again && this.started && ++passes < 100);
    })();
    await this.tick;
    this.tick = null;
    if (this.started) {
      this.timer = setTimeout(() => this.notify(), this.config.pollIntervalMs);
      this.timer.unref();
      if (this.again) this.notify();
    }
  }

  private async fanOut(): Promise<void> {
    for (let batch = 0; batch < OUTBOX_BATCHES_PER_TICK; batch++) {
      const cursor = await this.store.outboxCursor();
      const events = await this.deps.metadata.readEvents(cursor, OUTBOX_BATCH);
      if (events.length === 0) return;
      const subscriptions = await this.activeSubscriptions();
      const deliveries: NewDelivery[] = [];
      for (const event of events) {
        const matching = subscriptions.filter((s) => s.matches(event));
        if (matching.length === 0) continue;
        const { payload, context } = await this.payloadOf(event);
        for (const { subscription } of matching) {
          deliveries.push({
            subscriptionId: subscription.id,
            eventId: event.id,
            eventType: event.type,
            repository: event.repository,
            payload,
            context,
          });
        }
      }
      const now = this.now();
      await this.store.fanOut(deliveries, events[events.length - 1]!.seq, now, now + this.config.maxAgeMs);
      if (deliveries.length > 0) {
        this.logger.debug({ events: events.length, deliveries: deliveries.length }, 'webhook events queued');
      }
      if (events.length < OUTBOX_BATCH) return;
    }
    this.again = true;
  }

  private async activeSubscriptions(): Promise<CompiledSubscription[]> {
    // Paused subscriptions get their deliveries queued; disabled ones get none.
    const subscriptions = (await this.store.listSubscriptions()).filter((s) => s.state !== 'disabled');
    const live = new Set(subscriptions.map((s) => s.id));
    for (const id of this.compiled.keys()) if (!live.has(id)) this.compiled.delete(id);
    return subscriptions.map((subscription) => {
      const cached = this.compiled.get(subscription.id);
      if (cached && cached.updatedAt === subscription.updatedAt && cached.compiled.subscription.startSeq === subscription.startSeq) {
        return cached.compiled;
      }
      const compiled = compileSubscription(subscription);
      this.compiled.set(subscription.id, { updatedAt: subscription.updatedAt, compiled });
      return compiled;
    });
  }

  /**
   * The native payload of an outbox event, naming the host its request addressed, and the
   * delivery context the other formats need; for an index, its platforms are read from the stored manifest.
   */
  async payloadOf(event: RegistryEvent): Promise<{ payload: EventPayload; context: DeliveryContext }> {
    let platforms = null;
    if (event.digest && isIndexMediaType(event.mediaType) && event.type !== 'manifest.deleted') {
      const manifest = await this.deps.metadata.getManifest(event.repository, event.digest);
      if (manifest) platforms = indexPlatforms(manifest.content);
    }
    const origin = this.deps.origins.of(event.request);
    return { payload: payloadFromEvent(event, origin.host, platforms), context: deliveryContextOf(origin, event.request) };
  }

  private async dispatchDue(): Promise<void> {
    const room = this.config.maxInFlight - this.inFlight.size;
    if (room <= 0) return;
    const due = await this.store.dueDeliveries(this.now(), room + this.inFlight.size);
    for (const { delivery, subscription } of due) {
      if (this.inFlight.size >= this.config.maxInFlight || !this.started) {
        this.capped = true;
        break;
      }
      if (!this.inFlight.has(delivery.id)) this.send(delivery, subscription);
    }
  }

  /**
   * Starts one delivery unless its endpoint is at its limit (then a later pass starts it).
   * `claimedAt`: the store already claimed it, as the lane's next, in the slot of the delivery
   * before it, so no limit applies.
   */
  private send(delivery: Delivery, subscription: Subscription, claimedAt?: number): void {
    const endpoint = endpointOf(subscription.url);
    const busy = this.perEndpoint.get(endpoint) ?? 0;
    if (claimedAt === undefined && busy >= this.config.maxInFlightPerEndpoint) {
      this.capped = true;
      return;
    }
    this.perEndpoint.set(endpoint, busy + 1);
    const lane: LaneProgress = { next: null, checked: false };
    const sending = this.deliver(delivery, subscription, lane, claimedAt)
      .catch((error: unknown) => this.logger.error({ err: error, delivery: delivery.id }, 'webhook delivery crashed'))
      .finally(() => {
        this.inFlight.delete(delivery.id);
        const left = (this.perEndpoint.get(endpoint) ?? 1) - 1;
        if (left <= 0) this.perEndpoint.delete(endpoint);
        else this.perEndpoint.set(endpoint, left);
        if (lane.next) this.send(lane.next.delivery, lane.next.subscription, lane.next.claimedAt);
        else if (!lane.checked) void this.continueLane(delivery, subscription);
        else if (this.capped) {
          this.capped = false;
          this.notify();
        }
      });
    this.inFlight.set(delivery.id, sending);
  }

  /**
   * A delivery finished whose outcome was recorded alone (a retry is due later, the limits held
   * deliveries back, the dispatcher is stopping): start the lane's next one if it is due (one
   * indexed lookup, not a pass over every lane). A full pass runs instead when deliveries were
   * held back by the in-flight limits, or for pings.
   */
  private async continueLane(finished: Delivery, subscription: Subscription): Promise<void> {
    if (this.capped || finished.repository === null || !this.started) {
      this.capped = false;
      this.notify();
      return;
    }
    try {
      const next = await this.store.laneHead(subscription.id, finished.repository, this.now());
      if (next && this.started && !this.inFlight.has(next.delivery.id) && this.inFlight.size < this.config.maxInFlight) this.send(next.delivery, next.subscription);
      else if (next) this.notify();
    } catch (error) {
      this.logger.error({ err: error }, 'webhook dispatcher could not read the next delivery');
      this.notify();
    }
  }

  /**
   * Records an attempt's outcome. When the delivery leaves its lane (delivered or failed) and the
   * lane may go on, the outcome joins the batch written at the end of this turn of the event
   * loop: one transaction records every outcome in it and claims each lane's next delivery
   * (with many lanes in flight, a backlog takes a fraction of a commit per delivery), noted in
   * `lane` for {@link send} to start.
   */
  private record(delivery: Delivery, subscription: Subscription, outcome: AttemptOutcome, lane: LaneProgress): Promise<void> {
    const repository = delivery.repository;
    if (outcome.state === 'pending' || repository === null || this.capped || !this.started) {
      return this.store.recordAttempt(delivery.id, outcome);
    }
    return new Promise<void>((resolve, reject) => {
      this.outcomes.push({ deliveryId: delivery.id, outcome, subscriptionId: subscription.id, repository, lane, resolve, reject });
      if (this.outcomes.length === 1) setImmediate(() => void this.writeOutcomes());
    });
  }

  private async writeOutcomes(): Promise<void> {
    const batch = this.outcomes.splice(0);
    const at = this.now();
    const next = { at, holdUntil: claimHold(at, this.config), maxAgeMs: this.config.maxAgeMs };
    try {
      const claimed = await this.store.recordAttemptsAndClaimNext(
        batch.map((item) => ({ deliveryId: item.deliveryId, outcome: item.outcome, next: { ...next, subscriptionId: item.subscriptionId, repository: item.repository } })),
      );
      batch.forEach((item, i) => {
        const due = claimed[i] ?? null;
        item.lane.checked = true;
        item.lane.next = due && { ...due, claimedAt: at };
        item.resolve();
      });
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }

  private async deliver(delivery: Delivery, subscription: Subscription, lane: LaneProgress, claimedAt?: number): Promise<void> {
    const outcome = await runAttempt(this.store, this.deps.sender, subscription, delivery, this.config, this.deps.formatting, this.now, {
      random: this.random,
      claimedAt,
      record: (result) => this.record(delivery, subscription, result, lane),
    });
    if (!outcome) return;
    const { attempt } = outcome;
    // A backlog delivers thousands a second: build the log line only when it will be written.
    const level = outcome.state === 'delivered' ? 'info' : outcome.state === 'pending' ? 'warn' : 'error';
    if (!this.logger.isLevelEnabled(level)) return;
    const context = {
      subscription: subscription.id,
      delivery: delivery.id,
      event: delivery.eventId,
      type: delivery.eventType,
      repository: delivery.repository,
      endpoint: redactedUrl(subscription.url),
      attempt: attempt.attempt,
      status: attempt.status,
      latencyMs: attempt.latencyMs,
    };
    if (outcome.state === 'delivered') {
      this.logger.info(context, 'webhook delivered');
    } else if (outcome.state === 'pending') {
      this.logger.warn({ ...context, error: attempt.error, retryAt: new Date(outcome.nextAttemptAt).toISOString() }, 'webhook delivery failed, will retry');
    } else {
      this.logger.error({ ...context, error: attempt.error }, 'webhook delivery failed for good');
    }
  }

  private async pruneIfDue(): Promise<void> {
    const now = this.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    const removed = await this.store.prune(now - this.config.retentionMs);
    if (removed > 0) this.logger.info({ removed }, 'old webhook deliveries pruned');
  }
}

/** What finishing a delivery found of its lane: checked (the fast path ran), and the next delivery it claimed. */
interface LaneProgress {
  checked: boolean;
  next: (DueDelivery & { claimedAt: number }) | null;
}

interface PendingOutcome {
  deliveryId: number;
  outcome: AttemptOutcome;
  subscriptionId: string;
  repository: string;
  lane: LaneProgress;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** scheme://host:port — the unit the in-flight bound applies to. */
export function endpointOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** A URL fit for logs: no credentials, no query string (receivers put tokens there). */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return '(invalid url)';
  }
}
