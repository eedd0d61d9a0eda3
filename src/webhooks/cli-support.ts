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
 * WebhookError (kind: invalid, unauthorized, not_found, conflict, read_only).
 */
import { pino, type Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { openMetadataBackend } from '../metadata/backend.js';
import { createWebhooks, type PublicSubscription, type WebhookService } from './service.js';
import { deployStatusOf } from './deploys.js';
import type { Delivery, DeliveryWithAttempts, DeployReport } from './types.js';

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
    subscription.state,
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

/** `#id  state  type  repo:tag  attempts=n  last=status/error  deploy=…  event=…` (deploy: when reports were read) */
export function describeDelivery(delivery: Delivery & { deploys?: DeployReport[] }): string {
  const target = delivery.repository ? `${delivery.repository}${delivery.payload.tag ? `:${delivery.payload.tag}` : ''}` : '-';
  const last = delivery.lastError ?? (delivery.lastStatus !== null ? String(delivery.lastStatus) : '-');
  return [
    `#${delivery.id}`,
    delivery.state,
    delivery.eventType,
    target,
    `attempts=${delivery.attempts}`,
    `last=${last}`,
    delivery.deploys ? `deploy=${deployStatusOf(delivery.deploys) ?? 'none'}` : '',
    `event=${delivery.eventId}`,
    delivery.state === 'pending' ? `next=${new Date(delivery.nextAttemptAt).toISOString()}` : '',
  ]
    .filter(Boolean)
    .join('  ');
}

/**
 * One delivery for a person: its line, `deploy: succeeded | failed | running | none`, each
 * agent's latest report (with the start of its output when it failed), and the attempt log.
 */
export function describeDeliveryDetail(delivery: DeliveryWithAttempts & { deploys: DeployReport[] }): string[] {
  const lines = [describeDelivery(delivery), `deploy: ${deployStatusOf(delivery.deploys) ?? 'none'}`];
  for (const report of delivery.deploys) {
    const facts = [
      `  ${report.agent}`,
      report.status,
      `attempt=${report.attempt}`,
      report.exitCode !== null ? `exit=${report.exitCode}` : '',
      report.durationMs !== null ? `duration=${report.durationMs}ms` : '',
      `reported=${new Date(report.reportedAt).toISOString()}`,
    ];
    lines.push(facts.filter(Boolean).join('  '));
    if (report.status === 'failed' && report.output) lines.push(...report.output.split('\n').slice(-5).map((line) => `    | ${line}`));
  }
  for (const attempt of delivery.log) {
    lines.push(`  attempt ${attempt.attempt}  ${new Date(attempt.at).toISOString()}  ${attempt.error ?? attempt.status ?? '-'}  ${attempt.latencyMs}ms`);
  }
  return lines;
}
