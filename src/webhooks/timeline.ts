/**
 * The events timeline (`GET /api/v1/events`): outbox events newest first, each with the deploy
 * results agents reported on its deliveries and, for administrators, the deliveries themselves.
 * A viewer sees only events of repositories it may pull; pages are cut by sequence number.
 */
import type { EventType, RegistryEvent } from '../registry/events.js';
import type { DeployReports } from './deploy-reports.js';
import type { WebhookStore } from './store.js';

export interface TimelineQuery {
  repository?: string;
  type?: EventType;
  /** 1..100. */
  limit: number;
  /** Only events older than this sequence number (the `next` of the previous page). */
  before?: number;
}

export interface TimelineViewer {
  canPull(repository: string): boolean;
  /** Administrators also see each event's deliveries. */
  admin: boolean;
}

export interface TimelinePage {
  events: Array<Record<string, unknown>>;
  /** Pass as `before` for the next page; null when there is none. */
  next: number | null;
}

/** Outbox rows read per query while looking for events the viewer may see, and queries per page at most. */
const SCAN_BATCH = 200;
const SCAN_BATCHES = 10;

export async function readTimeline(store: WebhookStore, deploys: DeployReports, query: TimelineQuery, viewer: TimelineViewer): Promise<TimelinePage> {
  // One more than a page: its presence says there is a next page.
  const wanted = query.limit + 1;
  const size = query.repository !== undefined ? wanted : SCAN_BATCH;
  const visible: RegistryEvent[] = [];
  let cursor = query.before;
  let more = true;
  for (let batch = 0; batch < SCAN_BATCHES && more && visible.length < wanted; batch++) {
    const rows = await store.listEvents({ repository: query.repository, type: query.type, beforeSeq: cursor, limit: size });
    more = rows.length === size;
    for (const event of rows) {
      cursor = event.seq;
      if (viewer.canPull(event.repository) && visible.push(event) === wanted) break;
    }
  }
  const page = visible.slice(0, query.limit);
  // A full page and one more: the next page starts below the page's last event. Scanning
  // stopped early (a caller who may see little of a long outbox): it resumes where it stopped.
  const next = visible.length === wanted ? page[page.length - 1]!.seq : more && cursor !== undefined ? cursor : null;
  return { events: await describe(store, deploys, page, viewer.admin), next };
}

async function describe(store: WebhookStore, deploys: DeployReports, events: RegistryEvent[], admin: boolean): Promise<Array<Record<string, unknown>>> {
  const deliveries = await deploys.attach(await store.deliveriesOfEvents(events.map((e) => e.id)));
  return events.map((event) => {
    const own = deliveries.filter((d) => d.eventId === event.id);
    const view: Record<string, unknown> = {
      seq: event.seq,
      id: event.id,
      type: event.type,
      repository: event.repository,
      tag: event.tag,
      digest: event.digest,
      previousDigest: event.previousDigest,
      mediaType: event.mediaType,
      actor: { name: event.actor.name, kind: event.actor.kind },
      createdAt: new Date(event.createdAt).toISOString(),
      deploys: own.flatMap((delivery) =>
        delivery.deploys.map((report) => ({
          deliveryId: delivery.id,
          subscriptionId: delivery.subscriptionId,
          agent: report.agent,
          status: report.status,
          attempt: report.attempt,
          exitCode: report.exitCode,
          durationMs: report.durationMs,
          finishedAt: report.finishedAt === null ? null : new Date(report.finishedAt).toISOString(),
          reportedAt: new Date(report.reportedAt).toISOString(),
        })),
      ),
    };
    if (admin) {
      view.deliveries = own.map((d) => ({ id: d.id, subscriptionId: d.subscriptionId, state: d.state, attempts: d.attempts, lastStatus: d.lastStatus, lastError: d.lastError }));
    }
    return view;
  });
}
