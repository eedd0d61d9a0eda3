/**
 * Where webhooks keep their state: subscriptions, one delivery per (subscription, event)
 * with its state and schedule, the attempt log, and the outbox cursor. The interface is
 * asynchronous so that another database can implement it; {@link SqliteWebhookStore} shares
 * the registry's SQLite database (tables from the `webhooks` migration).
 */
import type { EventType, RegistryEvent } from '../registry/events.js';
import type { NewDeployReport } from './deploys.js';
import type {
  Delivery,
  DeliveryAttempt,
  DeliveryContext,
  DeliveryState,
  DeliveryWithAttempts,
  DeployReport,
  DeployStatus,
  EventPayload,
  Subscription,
  WebhookEventType,
} from './types.js';

/** The error a begun attempt shows until its outcome is written: still in flight, or the process stopped during it. */
export const NO_OUTCOME_ERROR = 'no outcome recorded: in flight, or the registry stopped during the attempt';

export type NewSubscription = Omit<Subscription, 'startSeq' | 'createdAt' | 'updatedAt'>;
export type SubscriptionPatch = Partial<Omit<NewSubscription, 'id' | 'source'>>;

export interface NewDelivery {
  subscriptionId: string;
  eventId: string;
  eventType: WebhookEventType;
  repository: string | null;
  payload: EventPayload;
  context: DeliveryContext;
  /** When the dispatcher may first send it; default: at once. */
  dueAt?: number;
}

export interface DueDelivery {
  delivery: Delivery;
  subscription: Subscription;
}

/** Which lane to continue, and the claim's terms (see {@link WebhookStore.beginAttempt}). */
export interface LaneClaim {
  subscriptionId: string;
  repository: string;
  at: number;
  holdUntil: number;
  maxAgeMs: number;
}

/** An attempt's outcome, and the lane to continue. */
export interface LaneOutcome {
  deliveryId: number;
  outcome: AttemptOutcome;
  next: LaneClaim;
}

export interface AttemptOutcome {
  attempt: DeliveryAttempt;
  state: DeliveryState;
  /** When to try again (pending only). */
  nextAttemptAt: number;
}

export interface DeliveryQuery {
  subscriptionId?: string;
  state?: DeliveryState;
  limit: number;
  /** Only deliveries with a smaller id (the next page of a newest-first listing). */
  beforeId?: number;
}

export interface DeliveryStats {
  byState: { pending: number; delivered: number; failed: number };
  /** The latest deploy report of each (delivery, agent), by status. */
  deploys: Record<DeployStatus, number>;
  /** Age of the oldest delivery pending for an active subscription, in seconds (0: none). */
  oldestPendingSeconds: number;
  /** Outbox events recorded but not yet fanned out into deliveries. */
  outboxBacklog: number;
}

export interface WebhookStore {
  listSubscriptions(): Promise<Subscription[]>;
  getSubscription(id: string): Promise<Subscription | null>;
  /** Creates a subscription that receives events recorded from now on. */
  createSubscription(subscription: NewSubscription, now: number): Promise<Subscription>;
  updateSubscription(id: string, patch: SubscriptionPatch, now: number): Promise<Subscription | null>;
  /** Deletes a subscription with its deliveries and their log. */
  deleteSubscription(id: string): Promise<boolean>;

  /** The last outbox sequence number fanned out into deliveries. */
  outboxCursor(): Promise<number>;
  /** Records the deliveries of a batch of outbox events and moves the cursor past them, atomically. */
  fanOut(deliveries: NewDelivery[], cursor: number, now: number, expiresAt: number): Promise<void>;
  /**
   * Records one delivery outside the outbox fan-out (pings, pulls, redelivery of an event the
   * subscription never had); an existing (subscription, event) pair is returned as is, and
   * null means the subscription does not exist.
   */
  insertDelivery(delivery: NewDelivery, now: number, expiresAt: number): Promise<Delivery | null>;

  /**
   * Pending deliveries of active subscriptions that are due and first in their lane
   * (subscription, repository), oldest first: a later event never overtakes an earlier one.
   */
  dueDeliveries(now: number, limit: number): Promise<DueDelivery[]>;
  /** The head of one lane when it is due and its subscription active (the next to send once the one before it finished). */
  laneHead(subscriptionId: string, repository: string, now: number): Promise<DueDelivery | null>;
  /**
   * Claims a pending delivery for its attempt number `attempt` before anything is sent: counts
   * the attempt, logs it without an outcome, and holds the delivery off until `holdUntil` (so
   * neither this dispatcher nor another replica sends it twice meanwhile; were the process to
   * die, it is retried then, as the next attempt). The first attempt since the delivery was
   * queued or redelivered starts its age: it expires `maxAgeMs` later. False when the delivery is no longer pending
   * at `attempt - 1` attempts (another dispatcher took it, or it was changed).
   */
  beginAttempt(deliveryId: number, attempt: number, at: number, holdUntil: number, maxAgeMs: number): Promise<boolean>;
  /** Writes the outcome of the attempt begun with {@link beginAttempt} and moves the delivery to its new state, atomically. */
  recordAttempt(deliveryId: number, outcome: AttemptOutcome): Promise<void>;
  /**
   * A backlog in fewer commits: for each item, in one transaction for all, writes an attempt's
   * outcome as {@link recordAttempt} does and, when the lane's next delivery is then due and its
   * subscription active, claims that one's next attempt as {@link beginAttempt} would. Returns,
   * per item, the claimed delivery as it was before the claim, or null.
   */
  recordAttemptsAndClaimNext(items: readonly LaneOutcome[]): Promise<Array<DueDelivery | null>>;

  listDeliveries(query: DeliveryQuery): Promise<Delivery[]>;
  getDelivery(id: number): Promise<DeliveryWithAttempts | null>;
  /** The delivery of one event to one subscription, if there is one. */
  findDelivery(subscriptionId: string, eventId: string): Promise<Delivery | null>;
  /** Puts a delivery back in the queue, due now, whatever its state; its age starts again at its next attempt. */
  requeue(id: number, now: number, expiresAt: number): Promise<Delivery | null>;
  /**
   * Requeues, oldest first, up to `limit` deliveries in `state` of a subscription (or all),
   * created in [since, until); returns their ids. What {@link requeue} does to one.
   */
  requeueMatching(query: BulkRedeliveryQuery, now: number, expiresAt: number): Promise<number[]>;
  /** The outbox sequence number of an event id, or null when the outbox has no such event. */
  findEventSeq(eventId: string): Promise<number | null>;
  /** Removes delivered and failed deliveries last touched before `before`; returns how many. */
  prune(before: number): Promise<number>;
  /** Read-only figures for metrics: deliveries by state, deploy results, the oldest pending delivery, the outbox backlog. */
  deliveryStats?(now: number): Promise<DeliveryStats>;

  /**
   * Records an agent's deploy report on a delivery: it replaces the agent's stored report
   * unless that one was sent later (reports may arrive out of order), and is counted either way.
   */
  recordDeploy(deliveryId: number, report: NewDeployReport): Promise<void>;
  /** The latest report of every agent, per delivery (deliveries without reports are absent). */
  deploysOf(deliveryIds: readonly number[]): Promise<Map<number, DeployReport[]>>;

  /** Outbox events, newest first (the events timeline). */
  listEvents(query: EventQuery): Promise<RegistryEvent[]>;
  /** Every delivery of these events (any subscription). */
  deliveriesOfEvents(eventIds: readonly string[]): Promise<Delivery[]>;
}

export interface BulkRedeliveryQuery {
  subscriptionId?: string;
  state: Exclude<DeliveryState, 'pending'>;
  /** Created at or after (ms since the epoch). */
  since?: number;
  /** Created before. */
  until?: number;
  limit: number;
}

export interface EventQuery {
  repository?: string;
  type?: EventType;
  /** Only events with a smaller sequence number (the next page). */
  beforeSeq?: number;
  limit: number;
}

