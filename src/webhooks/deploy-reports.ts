/**
 * Receiving deploy reports (contract in deploys.ts and docs/webhooks.md, "Deploy results"):
 * checks in the order that leaks least (the subscription, then the signature with its secret,
 * then the body, its age, and last the delivery and its event id), then records the report.
 * Also attaches the reports to deliveries for the API, the CLI and the events timeline.
 */
import { WebhookError } from './errors.js';
import { deployReportSchema, MAX_REPORT_AGE_MS, MAX_REPORT_FUTURE_MS, toNewReport } from './deploys.js';
import { verifySignature } from './signing.js';
import type { WebhookStore } from './store.js';
import type { Delivery, DeployReport } from './types.js';

export type WithDeploys<T extends Delivery> = T & { deploys: DeployReport[] };

export class DeployReports {
  constructor(
    private readonly store: WebhookStore,
    private readonly now: () => number,
  ) {}

  /** Records one report posted to a delivery's callback; throws WebhookError (404, 401, 400) to refuse it. */
  async receive(subscriptionId: string, deliveryId: number, body: Buffer, signature: string | undefined): Promise<void> {
    const subscription = await this.store.getSubscription(subscriptionId);
    if (!subscription) throw new WebhookError('not_found', `no webhook subscription ${subscriptionId}`);
    if (!verifySignature(subscription.secret, body, signature)) {
      throw new WebhookError('unauthorized', 'bad or missing X-Registry-Signature-256 (HMAC-SHA256 of the body with the subscription secret)');
    }
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new WebhookError('invalid', 'request body is not valid JSON');
    }
    const parsed = deployReportSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new WebhookError('invalid', issue ? `${issue.path.map(String).join('.') || 'body'}: ${issue.message}` : 'invalid deploy report', {
        issues: parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message })),
      });
    }
    const now = this.now();
    const sentAt = Date.parse(parsed.data.sentAt);
    if (now - sentAt > MAX_REPORT_AGE_MS || sentAt - now > MAX_REPORT_FUTURE_MS) {
      throw new WebhookError('unauthorized', `sentAt ${parsed.data.sentAt} is older than 5 minutes or more than 1 minute ahead`);
    }
    const delivery = await this.store.getDelivery(deliveryId);
    if (!delivery || delivery.subscriptionId !== subscriptionId || delivery.eventId !== parsed.data.eventId) {
      throw new WebhookError('not_found', `subscription ${subscriptionId} has no delivery ${deliveryId} of event ${parsed.data.eventId}`);
    }
    await this.store.recordDeploy(deliveryId, toNewReport(parsed.data, now));
  }

  /** The deliveries with every agent's latest report. */
  async attach<T extends Delivery>(deliveries: T[]): Promise<Array<WithDeploys<T>>> {
    const reports = await this.store.deploysOf(deliveries.map((d) => d.id));
    return deliveries.map((delivery) => ({ ...delivery, deploys: reports.get(delivery.id) ?? [] }));
  }
}
