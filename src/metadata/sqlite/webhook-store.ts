/**
 * The webhook store on the registry's SQLite database (tables from the `webhooks` migration):
 * subscriptions, deliveries with their schedule, the attempt log and the outbox cursor.
 */
import type Database from 'better-sqlite3';
import type { Delivery, DeliveryWithAttempts, DeployReport, Subscription } from '../../webhooks/types.js';
import type { RegistryEvent } from '../../registry/events.js';
import type { NewDeployReport } from '../../webhooks/deploys.js';
import type {
  AttemptOutcome,
  BulkRedeliveryQuery,
  DeliveryQuery,
  DeliveryStats,
  DueDelivery,
  EventQuery,
  LaneOutcome,
  NewDelivery,
  NewSubscription,
  SubscriptionPatch,
  WebhookStore,
} from '../../webhooks/store.js';
import { NO_OUTCOME_ERROR } from '../../webhooks/store.js';
import { DeployTables } from './webhook-deploys.js';
import {
  DELIVERY_COLUMNS,
  DUE_COLUMNS,
  definedOnly,
  settingsColumns,
  SUBSCRIPTION_COLUMNS,
  toDelivery,
  toDue,
  toSubscription,
  type AttemptRow,
  type DeliveryRow,
  type DueRow,
  type SubscriptionRow,
} from '../webhook-rows.js';

export class SqliteWebhookStore implements WebhookStore {
  private readonly statements;
  private readonly deploys: DeployTables;

  constructor(private readonly db: Database.Database) {
    this.statements = prepare(db);
    this.deploys = new DeployTables(db);
  }

  async listSubscriptions(): Promise<Subscription[]> {
    return (this.statements.listSubscriptions.all() as SubscriptionRow[]).map(toSubscription);
  }

  async getSubscription(id: string): Promise<Subscription | null> {
    const row = this.statements.getSubscription.get(id) as SubscriptionRow | undefined;
    return row ? toSubscription(row) : null;
  }

  async createSubscription(subscription: NewSubscription, now: number): Promise<Subscription> {
    return this.db.transaction(() => {
      const startSeq = (this.statements.maxEventSeq.get() as number | null) ?? 0;
      this.statements.insertSubscription.run(subscription.id, ...settingsColumns(subscription), subscription.source, startSeq, now, now);
      return toSubscription(this.statements.getSubscription.get(subscription.id) as SubscriptionRow);
    })();
  }

  async updateSubscription(id: string, patch: SubscriptionPatch, now: number): Promise<Subscription | null> {
    return this.db.transaction(() => {
      const row = this.statements.getSubscription.get(id) as SubscriptionRow | undefined;
      if (!row) return null;
      const current = toSubscription(row);
      const next = { ...current, ...definedOnly(patch) };
      this.statements.updateSubscription.run(...settingsColumns(next), now, id);
      return toSubscription(this.statements.getSubscription.get(id) as SubscriptionRow);
    })();
  }

  async deleteSubscription(id: string): Promise<boolean> {
    return this.statements.deleteSubscription.run(id).changes > 0;
  }

  async outboxCursor(): Promise<number> {
    return this.statements.cursor.get() as number;
  }

  async fanOut(deliveries: NewDelivery[], cursor: number, now: number, expiresAt: number): Promise<void> {
    this.db.transaction(() => {
      for (const delivery of deliveries) this.insert(delivery, now, expiresAt);
      this.statements.setCursor.run(cursor);
    })();
  }

  async insertDelivery(delivery: NewDelivery, now: number, expiresAt: number): Promise<Delivery | null> {
    return this.db.transaction(() => {
      this.insert(delivery, now, expiresAt);
      const row = this.statements.deliveryByEvent.get(delivery.subscriptionId, delivery.eventId) as DeliveryRow | undefined;
      return row ? toDelivery(row) : null;
    })();
  }

  async dueDeliveries(now: number, limit: number): Promise<DueDelivery[]> {
    return (this.statements.due.all(now, limit) as DueRow[]).map(toDue);
  }

  async laneHead(subscriptionId: string, repository: string, now: number): Promise<DueDelivery | null> {
    const row = this.statements.laneHead.get(subscriptionId, repository, now) as DueRow | undefined;
    return row ? toDue(row) : null;
  }

  async beginAttempt(deliveryId: number, attempt: number, at: number, holdUntil: number, maxAgeMs: number): Promise<boolean> {
    return this.db.transaction(() => this.claim(deliveryId, attempt, at, holdUntil, maxAgeMs))();
  }

  async recordAttempt(deliveryId: number, outcome: AttemptOutcome): Promise<void> {
    this.db.transaction(() => this.writeOutcome(deliveryId, outcome))();
  }

  async recordAttemptsAndClaimNext(items: readonly LaneOutcome[]): Promise<Array<DueDelivery | null>> {
    return this.db.transaction(() =>
      items.map(({ deliveryId, outcome, next }) => {
        this.writeOutcome(deliveryId, outcome);
        const row = this.statements.laneHead.get(next.subscriptionId, next.repository, next.at) as DueRow | undefined;
        if (!row) return null;
        const due = toDue(row);
        return this.claim(due.delivery.id, due.delivery.attempts + 1, next.at, next.holdUntil, next.maxAgeMs) ? due : null;
      }),
    )();
  }

  /** beginAttempt's statements, inside the caller's transaction. */
  private claim(deliveryId: number, attempt: number, at: number, holdUntil: number, maxAgeMs: number): boolean {
    const claimed = this.statements.claimAttempt.run({ attempt, holdUntil, at, expires: at + maxAgeMs, id: deliveryId, before: attempt - 1 });
    if (claimed.changes === 0) return false;
    this.statements.insertAttempt.run(deliveryId, attempt, at, null, 0, NO_OUTCOME_ERROR, null);
    return true;
  }

  /** recordAttempt's statements, inside the caller's transaction. */
  private writeOutcome(deliveryId: number, outcome: AttemptOutcome): void {
    const { attempt } = outcome;
    this.statements.insertAttempt.run(deliveryId, attempt.attempt, attempt.at, attempt.status, attempt.latencyMs, attempt.error, attempt.responseBody);
    this.statements.updateDeliveryState.run(outcome.state, attempt.attempt, outcome.nextAttemptAt, attempt.at + attempt.latencyMs, attempt.status, attempt.error, deliveryId);
  }

  async listDeliveries(query: DeliveryQuery): Promise<Delivery[]> {
    const rows = this.statements.listDeliveries.all({
      subscription: query.subscriptionId ?? null,
      state: query.state ?? null,
      before: query.beforeId ?? null,
      limit: query.limit,
    }) as DeliveryRow[];
    return rows.map(toDelivery);
  }

  async getDelivery(id: number): Promise<DeliveryWithAttempts | null> {
    const row = this.statements.getDelivery.get(id) as DeliveryRow | undefined;
    if (!row) return null;
    const attempts = (this.statements.attempts.all(id) as AttemptRow[]).map((a) => ({
      attempt: a.attempt,
      at: a.at,
      status: a.status,
      latencyMs: a.latency_ms,
      error: a.error,
      responseBody: a.response_body,
    }));
    return { ...toDelivery(row), log: attempts };
  }

  async findDelivery(subscriptionId: string, eventId: string): Promise<Delivery | null> {
    const row = this.statements.deliveryByEvent.get(subscriptionId, eventId) as DeliveryRow | undefined;
    return row ? toDelivery(row) : null;
  }

  async requeue(id: number, now: number, expiresAt: number): Promise<Delivery | null> {
    return this.db.transaction(() => {
      if (this.statements.requeue.run(now, expiresAt, now, id).changes === 0) return null;
      return toDelivery(this.statements.getDelivery.get(id) as DeliveryRow);
    })();
  }

  async requeueMatching(query: BulkRedeliveryQuery, now: number, expiresAt: number): Promise<number[]> {
    const ids = this.statements.requeueMatching.all({
      now,
      expires: expiresAt,
      state: query.state,
      subscription: query.subscriptionId ?? null,
      since: query.since ?? null,
      until: query.until ?? null,
      limit: query.limit,
    }) as number[];
    return ids.sort((a, b) => a - b);
  }

  async findEventSeq(eventId: string): Promise<number | null> {
    return (this.statements.eventSeq.get(eventId) as number | undefined) ?? null;
  }

  async prune(before: number): Promise<number> {
    return this.statements.prune.run(before).changes;
  }

  private statsStatements?: { byState: Database.Statement; oldestPending: Database.Statement; backlog: Database.Statement };

  async deliveryStats(now: number): Promise<DeliveryStats> {
    this.statsStatements ??= {
      byState: this.db.prepare('SELECT state, COUNT(*) AS n FROM webhook_deliveries GROUP BY state'),
      oldestPending: this.db
        .prepare(
          `SELECT MIN(d.created_at) FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
           WHERE d.state = 'pending' AND s.state = 'active'`,
        )
        .pluck(),
      backlog: this.db
        .prepare(`SELECT COALESCE((SELECT MAX(seq) FROM events), 0) - COALESCE((SELECT seq FROM webhook_cursor WHERE name = 'outbox'), 0)`)
        .pluck(),
    };
    const byState = { pending: 0, delivered: 0, failed: 0 };
    for (const row of this.statsStatements.byState.all() as Array<{ state: keyof typeof byState; n: number }>) byState[row.state] = row.n;
    const oldest = this.statsStatements.oldestPending.get() as number | null;
    return {
      byState,
      deploys: this.deploys.countByStatus(),
      oldestPendingSeconds: oldest === null ? 0 : Math.max(0, (now - oldest) / 1000),
      outboxBacklog: Math.max(0, this.statsStatements.backlog.get() as number),
    };
  }

  async recordDeploy(deliveryId: number, report: NewDeployReport): Promise<void> {
    this.deploys.record(deliveryId, report);
  }

  async deploysOf(deliveryIds: readonly number[]): Promise<Map<number, DeployReport[]>> {
    return this.deploys.of(deliveryIds);
  }

  async listEvents(query: EventQuery): Promise<RegistryEvent[]> {
    return this.deploys.events(query);
  }

  async deliveriesOfEvents(eventIds: readonly string[]): Promise<Delivery[]> {
    if (eventIds.length === 0) return [];
    return (this.statements.deliveriesOfEvents.all(JSON.stringify(eventIds)) as DeliveryRow[]).map(toDelivery);
  }

  private insert(delivery: NewDelivery, now: number, expiresAt: number): void {
    this.statements.insertDelivery.run({
      subscription: delivery.subscriptionId,
      event: delivery.eventId,
      type: delivery.eventType,
      repository: delivery.repository,
      payload: JSON.stringify(delivery.payload),
      context: JSON.stringify(delivery.context),
      now,
      due: delivery.dueAt ?? now,
      expires: expiresAt,
    });
  }
}

function prepare(db: Database.Database) {
  return {
    listSubscriptions: db.prepare(`SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id`),
    getSubscription: db.prepare(`SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = ?`),
    maxEventSeq: db.prepare('SELECT MAX(seq) FROM events').pluck(),
    eventSeq: db.prepare('SELECT seq FROM events WHERE id = ?').pluck(),
    insertSubscription: db.prepare(
      `INSERT INTO webhook_subscriptions (${SUBSCRIPTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    updateSubscription: db.prepare(
      `UPDATE webhook_subscriptions SET url = ?, secret = ?, events = ?, repositories = ?, tags = ?, headers = ?,
       format = ?, state = ?, updated_at = ? WHERE id = ?`,
    ),
    deleteSubscription: db.prepare('DELETE FROM webhook_subscriptions WHERE id = ?'),
    cursor: db.prepare("SELECT seq FROM webhook_cursor WHERE name = 'outbox'").pluck(),
    setCursor: db.prepare("UPDATE webhook_cursor SET seq = ? WHERE name = 'outbox'"),
    // A subscription deleted while its events were being fanned out simply gets none.
    insertDelivery: db.prepare(
      `INSERT INTO webhook_deliveries
         (subscription_id, event_id, event_type, repository, payload, context, state, attempts, next_attempt_at, expires_at, created_at, updated_at)
       SELECT :subscription, :event, :type, :repository, :payload, :context, 'pending', 0, :due, :expires, :now, :now
       WHERE EXISTS (SELECT 1 FROM webhook_subscriptions WHERE id = :subscription)
       ON CONFLICT (subscription_id, event_id) DO NOTHING`,
    ),
    deliveryByEvent: db.prepare(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = ? AND event_id = ?`),
    due: db.prepare(
      `SELECT ${DUE_COLUMNS}
       FROM (
         -- The head of each lane (one per subscription and repository, read off the lane index),
         -- and every pending delivery without a repository (pings, which have no order to keep).
         SELECT MIN(id) AS id FROM webhook_deliveries WHERE state = 'pending' AND repository IS NOT NULL GROUP BY subscription_id, repository
         UNION ALL
         SELECT id FROM webhook_deliveries WHERE state = 'pending' AND repository IS NULL
       ) heads
       JOIN webhook_deliveries d ON d.id = heads.id
       JOIN webhook_subscriptions s ON s.id = d.subscription_id
       WHERE d.next_attempt_at <= ? AND s.state = 'active'
       ORDER BY d.next_attempt_at, d.id
       LIMIT ?`,
    ),
    // An attempt is logged when it begins and completed when it ends (or stays without an outcome).
    laneHead: db.prepare(
      `SELECT ${DUE_COLUMNS}
       FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
       WHERE d.id = (SELECT MIN(id) FROM webhook_deliveries WHERE state = 'pending' AND subscription_id = ? AND repository = ?)
         AND d.next_attempt_at <= ? AND s.state = 'active'`,
    ),
    insertAttempt: db.prepare(
      `INSERT INTO webhook_attempts (delivery_id, attempt, at, status, latency_ms, error, response_body)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status = excluded.status,
         latency_ms = excluded.latency_ms, error = excluded.error, response_body = excluded.response_body`,
    ),
    claimAttempt: db.prepare(
      `UPDATE webhook_deliveries SET attempts = :attempt, next_attempt_at = :holdUntil, updated_at = :at,
         expires_at = CASE WHEN first_attempt_at IS NULL THEN :expires ELSE expires_at END,
         first_attempt_at = COALESCE(first_attempt_at, :at)
       WHERE id = :id AND state = 'pending' AND attempts = :before`,
    ),
    updateDeliveryState: db.prepare(
      `UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, updated_at = ?, last_status = ?, last_error = ?
       WHERE id = ?`,
    ),
    listDeliveries: db.prepare(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries
       WHERE (:subscription IS NULL OR subscription_id = :subscription)
         AND (:state IS NULL OR state = :state)
         AND (:before IS NULL OR id < :before)
       ORDER BY id DESC LIMIT :limit`,
    ),
    getDelivery: db.prepare(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?`),
    deliveriesOfEvents: db.prepare(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE event_id IN (SELECT value FROM json_each(?)) ORDER BY id`,
    ),
    attempts: db.prepare(
      'SELECT attempt, at, status, latency_ms, error, response_body FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt',
    ),
    requeue: db.prepare(
      `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?, expires_at = ?, first_attempt_at = NULL, updated_at = ? WHERE id = ?`,
    ),
    requeueMatching: db.prepare(
      `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = :now, expires_at = :expires, first_attempt_at = NULL, updated_at = :now
       WHERE id IN (
         SELECT id FROM webhook_deliveries
         WHERE state = :state AND (:subscription IS NULL OR subscription_id = :subscription)
           AND (:since IS NULL OR created_at >= :since) AND (:until IS NULL OR created_at < :until)
         ORDER BY id LIMIT :limit)
       RETURNING id`,
    ).pluck(),
    prune: db.prepare(`DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated_at < ?`),
  };
}
