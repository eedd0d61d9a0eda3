/**
 * The deploy-results and timeline half of the PostgreSQL webhook store: the latest report per
 * (delivery, agent), replaced only by one sent later (reports may arrive out of order, on any
 * replica: the row lock orders them), and the outbox read newest first.
 */
import type { RegistryEvent } from '../../registry/events.js';
import type { NewDeployReport } from '../../webhooks/deploys.js';
import type { EventQuery } from '../../webhooks/store.js';
import type { DeployReport, DeployStatus } from '../../webhooks/types.js';
import { toRegistryEvent, type EventRow } from '../rows.js';
import { REPORT_COLUMNS, toDeployReport, type DeployRow } from '../webhook-rows.js';
import type { Queryable } from './pool.js';

export async function recordDeploy(db: Queryable, deliveryId: number, report: NewDeployReport): Promise<void> {
  // One statement: the insert, or (for a report sent no earlier than the stored one) the replacement, and the count either way.
  await db.query(
    `INSERT INTO webhook_deploys AS w (delivery_id, agent, ${REPORT_COLUMNS}, reports) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)
     ON CONFLICT (delivery_id, agent) DO UPDATE SET
       status = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.status ELSE w.status END,
       attempt = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.attempt ELSE w.attempt END,
       exit_code = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.exit_code ELSE w.exit_code END,
       duration_ms = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.duration_ms ELSE w.duration_ms END,
       output = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.output ELSE w.output END,
       started_at = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.started_at ELSE w.started_at END,
       finished_at = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.finished_at ELSE w.finished_at END,
       reported_at = CASE WHEN excluded.sent_at >= w.sent_at THEN excluded.reported_at ELSE w.reported_at END,
       sent_at = GREATEST(excluded.sent_at, w.sent_at),
       reports = w.reports + 1`,
    [
      deliveryId,
      report.agent,
      report.status,
      report.attempt,
      report.exitCode,
      report.durationMs,
      report.output,
      report.startedAt,
      report.finishedAt,
      report.sentAt,
      report.reportedAt,
    ],
  );
}

export async function deploysOf(db: Queryable, deliveryIds: readonly number[]): Promise<Map<number, DeployReport[]>> {
  const byDelivery = new Map<number, DeployReport[]>();
  if (deliveryIds.length === 0) return byDelivery;
  const { rows } = await db.query<DeployRow>('SELECT * FROM webhook_deploys WHERE delivery_id = ANY($1::bigint[]) ORDER BY delivery_id, agent', [[...deliveryIds]]);
  for (const row of rows) byDelivery.set(row.delivery_id, [...(byDelivery.get(row.delivery_id) ?? []), toDeployReport(row)]);
  return byDelivery;
}

export async function countDeploysByStatus(db: Queryable): Promise<Record<DeployStatus, number>> {
  const counts: Record<DeployStatus, number> = { running: 0, succeeded: 0, failed: 0 };
  for (const row of (await db.query<{ status: DeployStatus; n: number }>('SELECT status, COUNT(*) AS n FROM webhook_deploys GROUP BY status')).rows) counts[row.status] = row.n;
  return counts;
}

export async function listEvents(db: Queryable, query: EventQuery): Promise<RegistryEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT * FROM events WHERE ($1::text IS NULL OR repository = $1) AND ($2::text IS NULL OR type = $2)
     AND ($3::bigint IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4`,
    [query.repository ?? null, query.type ?? null, query.beforeSeq ?? null, query.limit],
  );
  return rows.map(toRegistryEvent);
}
