/**
 * The seam where the PostgreSQL webhook store (subscriptions, deliveries with claims, the outbox
 * cursor behind a commit watermark) will go: until it is ported, webhooks in postgres mode have
 * no subscriptions, the server does not run the dispatcher, and every change is refused with a
 * message naming what is missing. Events still accumulate in the outbox, so nothing recorded
 * meanwhile is lost for the store that comes.
 */
import { RegistryError } from '../../registry/errors.js';
import type { RegistryEvent } from '../../registry/events.js';
import type { DeployReport, Delivery, DeliveryWithAttempts, Subscription } from '../../webhooks/types.js';
import type { DueDelivery, EventQuery, WebhookStore } from '../../webhooks/store.js';
import { toRegistryEvent, type EventRow } from '../rows.js';
import type { Queryable } from './pool.js';

export const WEBHOOKS_UNAVAILABLE =
  'webhooks are not available with metadata.driver postgres yet: the PostgreSQL webhook store (subscriptions, deliveries, the outbox cursor) is still to come; use metadata.driver sqlite for webhooks';

function refuse(): never {
  throw new RegistryError('UNSUPPORTED', WEBHOOKS_UNAVAILABLE);
}

export class UnavailableWebhookStore implements WebhookStore {
  /** The outbox it reads the events timeline from (which needs no webhook state). */
  constructor(private readonly db: Queryable) {}

  async listSubscriptions(): Promise<Subscription[]> {
    return [];
  }
  async getSubscription(): Promise<Subscription | null> {
    return null;
  }
  async createSubscription(): Promise<Subscription> {
    refuse();
  }
  async updateSubscription(): Promise<Subscription | null> {
    refuse();
  }
  async deleteSubscription(): Promise<boolean> {
    refuse();
  }
  async outboxCursor(): Promise<number> {
    refuse();
  }
  async fanOut(): Promise<void> {
    refuse();
  }
  async insertDelivery(): Promise<Delivery | null> {
    refuse();
  }
  async dueDeliveries(): Promise<DueDelivery[]> {
    return [];
  }
  async laneHead(): Promise<DueDelivery | null> {
    return null;
  }
  async beginAttempt(): Promise<boolean> {
    refuse();
  }
  async recordAttempt(): Promise<void> {
    refuse();
  }
  async requeueMatching(): Promise<number[]> {
    refuse();
  }
  async recordDeploy(): Promise<void> {
    refuse();
  }
  async deploysOf(): Promise<Map<number, DeployReport[]>> {
    return new Map();
  }
  async deliveriesOfEvents(): Promise<Delivery[]> {
    return [];
  }
  async listEvents(query: EventQuery): Promise<RegistryEvent[]> {
    const { rows } = await this.db.query<EventRow>(
      `SELECT * FROM events WHERE ($1::text IS NULL OR repository = $1) AND ($2::text IS NULL OR type = $2)
       AND ($3::bigint IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4`,
      [query.repository ?? null, query.type ?? null, query.beforeSeq ?? null, query.limit],
    );
    return rows.map(toRegistryEvent);
  }
  async listDeliveries(): Promise<Delivery[]> {
    return [];
  }
  async getDelivery(): Promise<DeliveryWithAttempts | null> {
    return null;
  }
  async findDelivery(): Promise<Delivery | null> {
    return null;
  }
  async requeue(): Promise<Delivery | null> {
    refuse();
  }
  async findEventSeq(): Promise<number | null> {
    return null;
  }
  async prune(): Promise<number> {
    return 0;
  }
}
