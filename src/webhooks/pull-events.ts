/**
 * `manifest.pulled`, opt-in per subscription and best effort: a pull changes nothing, so it is
 * not in the outbox; the HTTP layer hands each answered manifest GET here, and a delivery is
 * queued for every subscription (not disabled) that asked for pulls. Which subscriptions ask is
 * cached for a moment, so the hot path costs nothing when none do.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Actor } from '../registry/ports.js';
import { imageReference } from './formats.js';
import { deliveryContextOf, type EventOrigins } from './origin.js';
import type { WebhookStore } from './store.js';
import { compileSubscription, type CompiledSubscription } from './subscriptions.js';
import { PULL_EVENT_TYPE, type EventPayload } from './types.js';

export interface PullRecord {
  repository: string;
  /** The tag or digest the client asked for. */
  reference: string;
  digest: string;
  mediaType: string | null;
  size: number | null;
  actor: Actor;
}

const PULL_CACHE_MS = 2_000;

export class PullEvents {
  private subscriptions: CompiledSubscription[] = [];
  private cachedAt = -Infinity;
  private refreshing: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      store: WebhookStore;
      origins: EventOrigins;
      logger: Logger;
      now: () => number;
      maxAgeMs: number;
      /** Called once deliveries were queued (wakes the dispatcher). */
      queued: () => void;
    },
  ) {}

  /** Whether any subscription asks for pulls (cached for a moment; cheap on the hot path). */
  wanted(): boolean {
    if (this.deps.now() - this.cachedAt > PULL_CACHE_MS) void this.refresh();
    return this.subscriptions.length > 0;
  }

  /** Queues `manifest.pulled` for the subscriptions that asked for it. */
  async record(pull: PullRecord): Promise<void> {
    const tag = pull.reference.includes(':') ? null : pull.reference;
    const event = { type: PULL_EVENT_TYPE, repository: pull.repository, tag } as const;
    const matching = this.subscriptions.filter((s) => s.matches(event));
    if (matching.length === 0) return;
    const now = this.deps.now();
    const origin = this.deps.origins.of(pull.actor.request);
    const payload: EventPayload = {
      id: randomUUID(),
      type: PULL_EVENT_TYPE,
      timestamp: new Date(now).toISOString(),
      registry: origin.host,
      repository: pull.repository,
      tag,
      digest: pull.digest,
      mediaType: pull.mediaType,
      size: pull.size,
      platforms: null,
      reference: imageReference(origin.host, pull.repository, tag, pull.digest),
      actor: { name: pull.actor.name, kind: pull.actor.kind },
      previousDigest: null,
    };
    const context = deliveryContextOf(origin, pull.actor.request);
    for (const { subscription } of matching) {
      await this.deps.store.insertDelivery(
        { subscriptionId: subscription.id, eventId: payload.id, eventType: PULL_EVENT_TYPE, repository: pull.repository, payload, context },
        now,
        now + this.deps.maxAgeMs,
      );
    }
    this.deps.queued();
  }

  /** Subscriptions changed: read them again now. */
  invalidate(): void {
    this.cachedAt = -Infinity;
    void this.refresh();
  }

  refresh(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const subscriptions = await this.deps.store.listSubscriptions();
        // Paused subscriptions queue pulls like any event; disabled ones get none.
        this.subscriptions = subscriptions.filter((s) => s.state !== 'disabled' && s.events.includes(PULL_EVENT_TYPE)).map(compileSubscription);
        this.cachedAt = this.deps.now();
      } catch (error) {
        this.deps.logger.warn({ err: error }, 'could not read webhook subscriptions');
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }
}
