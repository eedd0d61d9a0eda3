/**
 * Deliveries as the admin API and the CLI show them: times in ISO 8601, the attempt log, and
 * the deploy outcome (`deploy`: one word for the delivery, `deploys`: every agent's latest report).
 */
import { deployStatusOf } from './deploys.js';
import type { Delivery, DeliveryAttempt, DeployReport } from './types.js';

type ShownDelivery = Delivery & { log?: DeliveryAttempt[]; deploys?: DeployReport[] };

export function deliveryView(delivery: ShownDelivery): Record<string, unknown> {
  const json: Record<string, unknown> = {
    id: delivery.id,
    subscriptionId: delivery.subscriptionId,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    repository: delivery.repository,
    state: delivery.state,
    attempts: delivery.attempts,
    nextAttemptAt: delivery.state === 'pending' ? new Date(delivery.nextAttemptAt).toISOString() : null,
    // Before its first attempt a delivery does not age (its window starts then).
    expiresAt: delivery.firstAttemptAt === null ? null : new Date(delivery.expiresAt).toISOString(),
    createdAt: new Date(delivery.createdAt).toISOString(),
    updatedAt: new Date(delivery.updatedAt).toISOString(),
    lastStatus: delivery.lastStatus,
    lastError: delivery.lastError,
    payload: delivery.payload,
  };
  if (delivery.deploys) {
    json.deploy = deployStatusOf(delivery.deploys);
    json.deploys = delivery.deploys.map(deployView);
  }
  if (delivery.log) json.log = delivery.log.map(attemptView);
  return json;
}

export function attemptView(attempt: DeliveryAttempt): Record<string, unknown> {
  return { ...attempt, at: new Date(attempt.at).toISOString() };
}

export function deployView(report: DeployReport): Record<string, unknown> {
  return {
    agent: report.agent,
    status: report.status,
    attempt: report.attempt,
    exitCode: report.exitCode,
    durationMs: report.durationMs,
    output: report.output,
    startedAt: new Date(report.startedAt).toISOString(),
    finishedAt: report.finishedAt === null ? null : new Date(report.finishedAt).toISOString(),
    reportedAt: new Date(report.reportedAt).toISOString(),
    reports: report.reports,
  };
}
