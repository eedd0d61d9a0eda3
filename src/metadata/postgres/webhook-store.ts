/**
 * The WebhookStore on PostgreSQL, shared by every replica's dispatcher:
 * - fan-out reads the outbox by seq, which is safe because events become visible in commit
 *   order (outbox.ts); deliveries are unique per (subscription, event), so two replicas fanning
 *   out the same events record each delivery once, and the cursor only moves forward;
 * - a delivery is claimed before it is sent (beginAttempt: a compare-and-set on its attempt
 *   count that also holds it off until `holdUntil`), so of two replicas that found the same lane
 *   head due, one sends it; the next of its lane is not due until the head is done (lane heads are
 *   the lowest pending id), so per-repository order holds across replicas.
 * Deploy reports and the events timeline are in webhook-deploys.ts.
 */
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
import type { Delivery, DeliveryWithAttempts, DeployReport, Subscription } from '../../webhooks/types.js';
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
import { transaction, type Pool, type Queryable } from './pool.js';
import { countDeploysByStatus, deploysOf, listEvents, recordDeploy } from './webhook-deploys.js';
import { claimAttempt, insertDeliveries, recordOutcome, recordOutcomesAndClaimNext } from './webhook-lanes.js';

export class PostgresWebhookStore implements WebhookStore {
  constructor(private readonly pool: Pool) {}

  async listSubscriptions(): Promise<Subscription[]> {
    return (await this.pool.query<SubscriptionRow>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id`)).rows.map(toSubscription);
  }

  async getSubscription(id: string): Promise<Subscription | null> {
    return subscription(this.pool, id);
  }

  async createSubscription(created: NewSubscription, now: number): Promise<Subscription> {
    return transaction(this.pool, async (client) => {
      const { rows } = await client.query<{ seq: number | null }>('SELECT MAX(seq) AS seq FROM events');
      await client.query(`INSERT INTO webhook_subscriptions (${SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)`, [
        created.id,
        ...settingsColumns(created),
        created.source,
        rows[0]!.seq ?? 0,
        now,
      ]);
      return (await subscription(client, created.id))!;
    });
  }

  async updateSubscription(id: string, patch: SubscriptionPatch, now: number): Promise<Subscription | null> {
    return transaction(this.pool, async (client) => {
      const row = (await client.query<SubscriptionRow>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1 FOR UPDATE`, [id])).rows[0];
      if (!row) return null;
      const next = { ...toSubscription(row), ...definedOnly(patch) };
      await client.query(
        `UPDATE webhook_subscriptions SET url = $1, secret = $2, events = $3, repositories = $4, tags = $5, headers = $6,
         format = $7, state = $8, updated_at = $9 WHERE id = $10`,
        [...settingsColumns(next), now, id],
      );
      return subscription(client, id);
    });
  }

  async deleteSubscription(id: string): Promise<boolean> {
    return ((await this.pool.query('DELETE FROM webhook_subscriptions WHERE id = $1', [id])).rowCount ?? 0) > 0;
  }

  async outboxCursor(): Promise<number> {
    return (await this.pool.query<{ seq: number }>("SELECT seq FROM webhook_cursor WHERE name = 'outbox'")).rows[0]!.seq;
  }

  fanOut(deliveries: NewDelivery[], cursor: number, now: number, expiresAt: number): Promise<void> {
    return insertDeliveries(this.pool, deliveries, cursor, now, expiresAt);
  }

  async insertDelivery(delivery: NewDelivery, now: number, expiresAt: number): Promise<Delivery | null> {
    await insertDeliveries(this.pool, [delivery], null, now, expiresAt);
    return deliveryByEvent(this.pool, delivery.subscriptionId, delivery.eventId);
  }

  async dueDeliveries(now: number, limit: number): Promise<DueDelivery[]> {
    const { rows } = await this.pool.query<DueRow>(
      `SELECT ${DUE_COLUMNS}
       FROM (
         -- The head of each lane, and every pending delivery without a repository (pings: no order to keep).
         SELECT MIN(id) AS id FROM webhook_deliveries WHERE state = 'pending' AND repository IS NOT NULL GROUP BY subscription_id, repository
         UNION ALL
         SELECT id FROM webhook_deliveries WHERE state = 'pending' AND repository IS NULL
       ) heads
       JOIN webhook_deliveries d ON d.id = heads.id
       JOIN webhook_subscriptions s ON s.id = d.subscription_id
       WHERE d.next_attempt_at <= $1 AND s.state = 'active'
       ORDER BY d.next_attempt_at, d.id
       LIMIT $2`,
      [now, limit],
    );
    return rows.map(toDue);
  }

  async laneHead(subscriptionId: string, repository: string, now: number): Promise<DueDelivery | null> {
    const { rows } = await this.pool.query<DueRow>(
      `SELECT ${DUE_COLUMNS}
       FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
       WHERE d.id = (SELECT MIN(id) FROM webhook_deliveries WHERE state = 'pending' AND subscription_id = $1 AND repository = $2)
         AND d.next_attempt_at <= $3 AND s.state = 'active'`,
      [subscriptionId, repository, now],
    );
    return rows[0] ? toDue(rows[0]) : null;
  }

  beginAttempt(deliveryId: number, attempt: number, at: number, holdUntil: number, maxAgeMs: number): Promise<boolean> {
    return claimAttempt(this.pool, deliveryId, attempt, at, holdUntil, maxAgeMs);
  }

  recordAttempt(deliveryId: number, outcome: AttemptOutcome): Promise<void> {
    return recordOutcome(this.pool, deliveryId, outcome);
  }

  recordAttemptsAndClaimNext(items: readonly LaneOutcome[]): Promise<Array<DueDelivery | null>> {
    return recordOutcomesAndClaimNext(this.pool, items);
  }

  async listDeliveries(query: DeliveryQuery): Promise<Delivery[]> {
    const { rows } = await this.pool.query<DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries
       WHERE ($1::text IS NULL OR subscription_id = $1) AND ($2::text IS NULL OR state = $2) AND ($3::bigint IS NULL OR id < $3)
       ORDER BY id DESC LIMIT $4`,
      [query.subscriptionId ?? null, query.state ?? null, query.beforeId ?? null, query.limit],
    );
    return rows.map(toDelivery);
  }

  async getDelivery(id: number): Promise<DeliveryWithAttempts | null> {
    const row = await delivery(this.pool, id);
    if (!row) return null;
    const { rows } = await this.pool.query<AttemptRow>(
      'SELECT attempt, at, status, latency_ms, error, response_body FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt',
      [id],
    );
    return {
      ...row,
      log: rows.map((a) => ({ attempt: a.attempt, at: a.at, status: a.status, latencyMs: a.latency_ms, error: a.error, responseBody: a.response_body })),
    };
  }

  findDelivery(subscriptionId: string, eventId: string): Promise<Delivery | null> {
    return deliveryByEvent(this.pool, subscriptionId, eventId);
  }

  async requeue(id: number, now: number, expiresAt: number): Promise<Delivery | null> {
    const { rowCount } = await this.pool.query(
      `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, expires_at = $2, first_attempt_at = NULL, updated_at = $1 WHERE id = $3`,
      [now, expiresAt, id],
    );
    return rowCount ? delivery(this.pool, id) : null;
  }

  async requeueMatching(query: BulkRedeliveryQuery, now: number, expiresAt: number): Promise<number[]> {
    const { rows } = await this.pool.query<{ id: number }>(
      `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, expires_at = $2, first_attempt_at = NULL, updated_at = $1
       WHERE id IN (
         SELECT id FROM webhook_deliveries
         WHERE state = $3 AND ($4::text IS NULL OR subscription_id = $4)
           AND ($5::bigint IS NULL OR created_at >= $5) AND ($6::bigint IS NULL OR created_at < $6)
         ORDER BY id LIMIT $7)
       RETURNING id`,
      [now, expiresAt, query.state, query.subscriptionId ?? null, query.since ?? null, query.until ?? null, query.limit],
    );
    return rows.map((row) => row.id).sort((a, b) => a - b);
  }

  async findEventSeq(eventId: string): Promise<number | null> {
    return (await this.pool.query<{ seq: number }>('SELECT seq FROM events WHERE id = $1', [eventId])).rows[0]?.seq ?? null;
  }

  async prune(before: number): Promise<number> {
    return (await this.pool.query(`DELETE FROM webhook_deliveries WHERE state != 'pending' AND updated_at < $1`, [before])).rowCount ?? 0;
  }

  async deliveryStats(now: number): Promise<DeliveryStats> {
    const byState = { pending: 0, delivered: 0, failed: 0 };
    for (const row of (await this.pool.query<{ state: keyof typeof byState; n: number }>('SELECT state, COUNT(*) AS n FROM webhook_deliveries GROUP BY state')).rows) {
      byState[row.state] = row.n;
    }
    const { rows } = await this.pool.query<{ oldest: number | null; backlog: number }>(
      `SELECT (SELECT MIN(d.created_at) FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
               WHERE d.state = 'pending' AND s.state = 'active') AS oldest,
              COALESCE((SELECT MAX(seq) FROM events), 0) - COALESCE((SELECT seq FROM webhook_cursor WHERE name = 'outbox'), 0) AS backlog`,
    );
    const oldest = rows[0]!.oldest;
    return {
      byState,
      deploys: await countDeploysByStatus(this.pool),
      oldestPendingSeconds: oldest === null ? 0 : Math.max(0, (now - oldest) / 1000),
      outboxBacklog: Math.max(0, rows[0]!.backlog),
    };
  }

  recordDeploy(deliveryId: number, report: NewDeployReport): Promise<void> {
    return recordDeploy(this.pool, deliveryId, report);
  }

  deploysOf(deliveryIds: readonly number[]): Promise<Map<number, DeployReport[]>> {
    return deploysOf(this.pool, deliveryIds);
  }

  listEvents(query: EventQuery): Promise<RegistryEvent[]> {
    return listEvents(this.pool, query);
  }

  async deliveriesOfEvents(eventIds: readonly string[]): Promise<Delivery[]> {
    if (eventIds.length === 0) return [];
    const { rows } = await this.pool.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE event_id = ANY($1::text[]) ORDER BY id`, [
      [...eventIds],
    ]);
    return rows.map(toDelivery);
  }
}

async function subscription(db: Queryable, id: string): Promise<Subscription | null> {
  const row = (await db.query<SubscriptionRow>(`SELECT ${SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1`, [id])).rows[0];
  return row ? toSubscription(row) : null;
}

async function delivery(db: Queryable, id: number): Promise<Delivery | null> {
  const row = (await db.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1`, [id])).rows[0];
  return row ? toDelivery(row) : null;
}

async function deliveryByEvent(db: Queryable, subscriptionId: string, eventId: string): Promise<Delivery | null> {
  const row = (
    await db.query<DeliveryRow>(`SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subscription_id = $1 AND event_id = $2`, [subscriptionId, eventId])
  ).rows[0];
  return row ? toDelivery(row) : null;
}
