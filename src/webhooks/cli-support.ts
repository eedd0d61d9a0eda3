/**
 * What a `registry webhook …` command needs: the webhook service over the configured storage
 * root's database (the server need not run; a running server sees changes on its next poll),
 * and one-line renderings of subscriptions and deliveries.
 *
 *   await withWebhookService(config, (webhooks) => webhooks.createSubscription({ url, events }));
 *
 * Every operation of the admin API is a method of WebhookService: listSubscriptions,
 * getSubscription, createSubscription, updateSubscription, deleteSubscription, ping,
 * listDeliveries, getDelivery, redeliver, redeliverEvent, failedDeliveries. Refusals throw
 * WebhookError (kind: invalid, not_found, conflict, read_only).
 */
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { openMetadataBackend } from '../metadata/backend.js';
import { createWebhooks, type PublicSubscription, type WebhookService } from './service.js';
import type { Delivery } from './types.js';

/** Opens webhooks for one command and closes everything after; the dispatcher is not started. */
export async function withWebhookService<T>(
  config: Config,
  run: (webhooks: WebhookService) => Promise<T>,
  logger: Logger = pino({ level: 'silent' }),
): Promise<T> {
  const backend = await openMetadataBackend(config);
  const webhooks = createWebhooks(config, backend, logger);
  try {
    return await run(webhooks);
  } finally {
    await webhooks.stop();
    await backend.close();
  }
}

/** `id  active  format  url  events=…  repositories=…  tags=…` (never the secret). */
export function describeSubscription(subscription: PublicSubscription): string {
  const list = (values: string[], empty: string) => (values.length ? values.join(',') : empty);
  return [
    subscription.id,
    subscription.active ? 'active' : 'paused',
    subscription.format,
    subscription.source === 'config' ? '(config)' : '',
    subscription.url,
    `events=${list(subscription.events, 'all-changes')}`,
    `repositories=${list(subscription.repositories, '*')}`,
    `tags=${list(subscription.tags, '*')}`,
  ]
    .filter(Boolean)
    .join('  ');
}

/** `#id  state  type  repo:tag  attempts=n  last=status/error  event=…` */
export function describeDelivery(delivery: Delivery): string {
  const target = delivery.repository ? `${delivery.repository}${delivery.payload.tag ? `:${delivery.payload.tag}` : ''}` : '-';
  const last = delivery.lastError ?? (delivery.lastStatus !== null ? String(delivery.lastStatus) : '-');
  return [
    `#${delivery.id}`,
    delivery.state,
    delivery.eventType,
    target,
    `attempts=${delivery.attempts}`,
    `last=${last}`,
    `event=${delivery.eventId}`,
    delivery.state === 'pending' ? `next=${new Date(delivery.nextAttemptAt).toISOString()}` : '',
  ]
    .filter(Boolean)
    .join('  ');
}
