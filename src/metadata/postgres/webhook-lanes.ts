/**
 * The dispatcher's hot writes on PostgreSQL, each one statement (one round trip, atomic without
 * BEGIN and COMMIT): a backlog's cost is in round trips, each parsed on both sides on the cores
 * the registry and PostgreSQL share (measured in bench/RESULTS.md, "Webhooks on PostgreSQL").
 * They are not prepared: a generic plan cached while the deliveries table was small (hash joins
 * over sequential scans) stays cached as it grows, and a 2,000-delivery backlog then cost up to
 * 6 times the database CPU (measured A/B); planned each time, they look rows up by index.
 * - a claim (beginAttempt): the compare-and-set on the attempt count and the attempt's log line;
 * - an outcome: its log line and the delivery's new state;
 * - a batch of outcomes and the claim of each lane's next delivery, as sets (`unnest`);
 * - a fan-out: every delivery of a batch of events and the cursor past them.
 */
import type { AttemptOutcome, DueDelivery, LaneOutcome, NewDelivery } from '../../webhooks/store.js';
import { NO_OUTCOME_ERROR } from '../../webhooks/store.js';
import { DUE_COLUMNS, toDue, type DueRow } from '../webhook-rows.js';
import { retryOnConflict, type Pool } from './pool.js';

const ATTEMPT_UPSERT = `ON CONFLICT (delivery_id, attempt) DO UPDATE SET at = excluded.at, status = excluded.status,
       latency_ms = excluded.latency_ms, error = excluded.error, response_body = excluded.response_body`;

const ATTEMPT_COLUMNS = 'delivery_id, attempt, at, status, latency_ms, error, response_body';

/** The claim's changes to a delivery row `c` claimed at $at, held until $hold, expiring $maxAge after its first attempt. */
const claimSet = (at: string, hold: string, maxAge: string) => `next_attempt_at = ${hold}, updated_at = ${at},
       expires_at = CASE WHEN c.first_attempt_at IS NULL THEN ${at} + ${maxAge} ELSE c.expires_at END,
       first_attempt_at = COALESCE(c.first_attempt_at, ${at})`;

const STATEMENTS = {
  claim: `WITH claimed AS (
       UPDATE webhook_deliveries c SET attempts = $2::int, ${claimSet('$3::bigint', '$4::bigint', '$5::bigint')}
       WHERE c.id = $1 AND c.state = 'pending' AND c.attempts = $2::int - 1
       RETURNING c.id)
     INSERT INTO webhook_attempts (${ATTEMPT_COLUMNS}) SELECT id, $2::int, $3::bigint, NULL, 0, $6::text, NULL FROM claimed
     ${ATTEMPT_UPSERT}`,
  outcome: `WITH logged AS (
       INSERT INTO webhook_attempts (${ATTEMPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ${ATTEMPT_UPSERT})
     UPDATE webhook_deliveries SET state = $8, attempts = $2, next_attempt_at = $9, updated_at = $3::bigint + $5::bigint, last_status = $4, last_error = $6
     WHERE id = $1`,
  /**
   * Every outcome, then each lane's head. The statement's sub-statements share one snapshot, in
   * which the finished deliveries are still pending: the head is the lowest pending id of the
   * lane other than those that finished (what a second statement would see once they are
   * delivered or failed; one left pending for a retry stays the head, not yet due).
   * The claim re-checks pending and the attempt count on the row as it is now (a replica that
   * claimed it meanwhile wins), as beginAttempt does.
   */
  outcomesAndClaims: `WITH outcome AS (
       SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::int[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::bigint[])
         AS o(id, attempt, at, status, latency_ms, error, response_body, state, next_attempt_at)),
     logged AS (
       INSERT INTO webhook_attempts (${ATTEMPT_COLUMNS}) SELECT id, attempt, at, status, latency_ms, error, response_body FROM outcome ${ATTEMPT_UPSERT}),
     recorded AS (
       UPDATE webhook_deliveries d SET state = o.state, attempts = o.attempt, next_attempt_at = o.next_attempt_at,
         updated_at = o.at + o.latency_ms, last_status = o.status, last_error = o.error
       FROM outcome o WHERE d.id = o.id),
     lane AS (
       SELECT * FROM unnest($10::int[], $11::text[], $12::text[], $13::bigint[], $14::bigint[], $15::bigint[])
         AS l(item, subscription_id, repository, at, hold_until, max_age_ms)),
     due AS (
       SELECT l.item, l.at AS claim_at, l.hold_until, l.max_age_ms, ${DUE_COLUMNS}
       FROM lane l
       JOIN webhook_deliveries d ON d.id = (
         SELECT MIN(p.id) FROM webhook_deliveries p
         WHERE p.state = 'pending' AND p.subscription_id = l.subscription_id AND p.repository = l.repository
           AND p.id NOT IN (SELECT id FROM outcome WHERE state <> 'pending'))
       JOIN webhook_subscriptions s ON s.id = d.subscription_id
       WHERE d.next_attempt_at <= l.at AND s.state = 'active'),
     claimed AS (
       UPDATE webhook_deliveries c SET attempts = c.attempts + 1, ${claimSet('due.claim_at', 'due.hold_until', 'due.max_age_ms')}
       FROM due WHERE c.id = due.id AND c.state = 'pending' AND c.attempts = due.attempts
       RETURNING c.id, c.attempts, due.claim_at),
     claim_logged AS (
       INSERT INTO webhook_attempts (${ATTEMPT_COLUMNS}) SELECT id, attempts, claim_at, NULL, 0, $16::text, NULL FROM claimed ${ATTEMPT_UPSERT})
     SELECT due.* FROM due JOIN claimed ON claimed.id = due.id`,
  /**
   * A batch's deliveries in the order given (ids order the lanes), none for a subscription
   * deleted meanwhile, none twice (a second fan-out of the same events adds nothing), and the
   * cursor moved forward only.
   */
  fanOut: `WITH cursor AS (UPDATE webhook_cursor SET seq = $10 WHERE name = 'outbox' AND seq < $10)
     INSERT INTO webhook_deliveries
       (subscription_id, event_id, event_type, repository, payload, context, state, attempts, next_attempt_at, expires_at, created_at, updated_at)
     SELECT n.subscription_id, n.event_id, n.event_type, n.repository, n.payload, n.context, 'pending', 0, COALESCE(n.due_at, $8), $9, $8, $8
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY
       AS n(subscription_id, event_id, event_type, repository, payload, context, due_at, position)
     WHERE EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = n.subscription_id)
     ORDER BY n.position
     ON CONFLICT (subscription_id, event_id) DO NOTHING`,
} as const;

/** beginAttempt: true when this call moved the attempt count (and logged the attempt). */
export async function claimAttempt(pool: Pool, deliveryId: number, attempt: number, at: number, holdUntil: number, maxAgeMs: number): Promise<boolean> {
  const { rowCount } = await retryOnConflict(() => pool.query(STATEMENTS.claim, [deliveryId, attempt, at, holdUntil, maxAgeMs, NO_OUTCOME_ERROR]));
  return (rowCount ?? 0) > 0;
}

/** recordAttempt: the attempt's log line and the delivery's new state. */
export async function recordOutcome(pool: Pool, deliveryId: number, outcome: AttemptOutcome): Promise<void> {
  const { attempt } = outcome;
  await retryOnConflict(() =>
    pool.query(STATEMENTS.outcome, [deliveryId, attempt.attempt, attempt.at, attempt.status, attempt.latencyMs, attempt.error, attempt.responseBody, outcome.state, outcome.nextAttemptAt]),
  );
}

/** recordAttemptsAndClaimNext: one statement for the whole batch; a lane named twice is claimed for its first item. */
export async function recordOutcomesAndClaimNext(pool: Pool, items: readonly LaneOutcome[]): Promise<Array<DueDelivery | null>> {
  if (items.length === 0) return [];
  const outcomes = columnsOf(items, 9, ({ deliveryId, outcome: { attempt, state, nextAttemptAt } }) => [
    deliveryId,
    attempt.attempt,
    attempt.at,
    attempt.status,
    attempt.latencyMs,
    attempt.error,
    attempt.responseBody,
    state,
    nextAttemptAt,
  ]);
  const seen = new Set<string>();
  const lanes = items.flatMap(({ next }, item) => {
    const key = JSON.stringify([next.subscriptionId, next.repository]);
    if (seen.has(key)) return [];
    seen.add(key);
    return [{ item, next }];
  });
  const laneColumns = columnsOf(lanes, 6, ({ item, next }) => [item, next.subscriptionId, next.repository, next.at, next.holdUntil, next.maxAgeMs]);
  const { rows } = await retryOnConflict(() => pool.query<DueRow & { item: number }>(STATEMENTS.outcomesAndClaims, [...outcomes, ...laneColumns, NO_OUTCOME_ERROR]));
  const claimed: Array<DueDelivery | null> = items.map(() => null);
  for (const row of rows) claimed[row.item] = toDue(row);
  return claimed;
}

/** fanOut and insertDelivery: the deliveries, in order, and the outbox cursor moved to `cursor` (null: left as it is). */
export async function insertDeliveries(pool: Pool, deliveries: readonly NewDelivery[], cursor: number | null, now: number, expiresAt: number): Promise<void> {
  const columns = columnsOf(deliveries, 7, (d) => [d.subscriptionId, d.eventId, d.eventType, d.repository, JSON.stringify(d.payload), JSON.stringify(d.context), d.dueAt ?? null]);
  await retryOnConflict(() => pool.query(STATEMENTS.fanOut, [...columns, now, expiresAt, cursor ?? -1]));
}

/** Rows as the `width` arrays `unnest` takes, one per column. */
function columnsOf<T>(items: readonly T[], width: number, row: (item: T) => unknown[]): unknown[][] {
  const columns: unknown[][] = Array.from({ length: width }, () => []);
  for (const item of items) row(item).forEach((value, i) => columns[i]!.push(value));
  return columns;
}

