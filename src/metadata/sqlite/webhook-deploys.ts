/**
 * The deploy-results and timeline half of the SQLite webhook store: deploy reports per
 * (delivery, agent) in `webhook_deploys`, and the outbox read newest first with the
 * deliveries of each event (tables from the `webhook-deploys` migration).
 */
import type Database from 'better-sqlite3';
import type { RegistryEvent } from '../../registry/events.js';
import type { NewDeployReport } from '../../webhooks/deploys.js';
import type { EventQuery } from '../../webhooks/store.js';
import type { DeployReport, DeployStatus } from '../../webhooks/types.js';
import { REPORT_COLUMNS, toDeployReport, type DeployRow } from '../webhook-rows.js';
import { eventFromRow, type EventRow } from './outbox.js';

export class DeployTables {
  private readonly statements;

  constructor(private readonly db: Database.Database) {
    this.statements = {
      sentAt: db.prepare('SELECT sent_at FROM webhook_deploys WHERE delivery_id = ? AND agent = ?').pluck(),
      insert: db.prepare(`INSERT INTO webhook_deploys (delivery_id, agent, ${REPORT_COLUMNS}, reports) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`),
      replace: db.prepare(
        `UPDATE webhook_deploys SET status = ?, attempt = ?, exit_code = ?, duration_ms = ?, output = ?, started_at = ?, finished_at = ?,
           sent_at = ?, reported_at = ?, reports = reports + 1 WHERE delivery_id = ? AND agent = ?`,
      ),
      count: db.prepare('UPDATE webhook_deploys SET reports = reports + 1 WHERE delivery_id = ? AND agent = ?'),
      ofDeliveries: db.prepare(`SELECT * FROM webhook_deploys WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY delivery_id, agent`),
      byStatus: db.prepare('SELECT status, COUNT(*) AS n FROM webhook_deploys GROUP BY status'),
      events: db.prepare(
        `SELECT * FROM events WHERE (:repository IS NULL OR repository = :repository) AND (:type IS NULL OR type = :type)
           AND (:before IS NULL OR seq < :before) ORDER BY seq DESC LIMIT :limit`,
      ),
    };
  }

  record(deliveryId: number, report: NewDeployReport): void {
    this.db.transaction(() => {
      const stored = this.statements.sentAt.get(deliveryId, report.agent) as number | undefined;
      const values = [report.status, report.attempt, report.exitCode, report.durationMs, report.output, report.startedAt, report.finishedAt, report.sentAt, report.reportedAt];
      if (stored === undefined) this.statements.insert.run(deliveryId, report.agent, ...values);
      else if (report.sentAt >= stored) this.statements.replace.run(...values, deliveryId, report.agent);
      else this.statements.count.run(deliveryId, report.agent);
    })();
  }

  of(deliveryIds: readonly number[]): Map<number, DeployReport[]> {
    const byDelivery = new Map<number, DeployReport[]>();
    if (deliveryIds.length === 0) return byDelivery;
    for (const row of this.statements.ofDeliveries.all(JSON.stringify(deliveryIds)) as DeployRow[]) {
      const list = byDelivery.get(row.delivery_id) ?? [];
      list.push(toDeployReport(row));
      byDelivery.set(row.delivery_id, list);
    }
    return byDelivery;
  }

  countByStatus(): Record<DeployStatus, number> {
    const counts: Record<DeployStatus, number> = { running: 0, succeeded: 0, failed: 0 };
    for (const row of this.statements.byStatus.all() as Array<{ status: DeployStatus; n: number }>) counts[row.status] = row.n;
    return counts;
  }

  events(query: EventQuery): RegistryEvent[] {
    const rows = this.statements.events.all({
      repository: query.repository ?? null,
      type: query.type ?? null,
      before: query.beforeSeq ?? null,
      limit: query.limit,
    }) as EventRow[];
    return rows.map(eventFromRow);
  }
}
