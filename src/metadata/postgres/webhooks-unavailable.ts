/**
 * The seam where the PostgreSQL webhook store (subscriptions, deliveries with claims, the outbox
 * cursor behind a commit watermark) will go: until it is ported, webhooks in postgres mode have
 * no subscriptions, the server does not run the dispatcher, and every change is refused with a
 * message naming what is missing. Events still accumulate in the outbox, so nothing recorded
 * meanwhile is lost for the store that comes.
 */
import { RegistryError } from '../../registry/errors.js';
import type { Delivery, DeliveryWithAttempts, Subscription } from '../../webhooks/types.js';
import type { DueDelivery, WebhookStore } from '../../webhooks/store.js';

export const WEBHOOKS_UNAVAILABLE =
  'webhooks are not available with metadata.driver postgres yet: the PostgreSQL webhook store (subscriptions, deliveries, the outbox cursor) is still to come; use metadata.driver sqlite for webhooks';

function refuse(): never {
  throw new RegistryError('UNSUPPORTED', WEBHOOKS_UNAVAILABLE);
}

export class UnavailableWebhookStore implements WebhookStore {
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
  async recordAttempt(): Promise<void> {
    refuse();
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
