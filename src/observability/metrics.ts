/**
 * Prometheus metrics (prom-client): process metrics, one latency histogram of HTTP requests by
 * route (a small fixed set), method and status, and the registry's own numbers, read at scrape
 * time from plain sources (the domain's RegistryStats, metadata counts, the webhook delivery
 * log, garbage collection) so that no domain code knows prom-client exists. One prom-client
 * Registry per app, so several registries in one process (tests) never share counters.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as MetricsRegistry } from 'prom-client';
import type { Inventory } from '../metadata/backend.js';
import type { RegistryStats } from '../registry/stats.js';
import { VERSION } from '../version.js';
import type { RouteLabel } from './routes.js';

/** The webhook delivery log right now. */
export interface WebhookDeliveryStats {
  /** Deliveries by state (delivered and failed ones are pruned after webhooks.retentionMs). */
  byState: { pending: number; delivered: number; failed: number };
  /** Deploy results reported by receivers: the latest report of each (delivery, agent), by status. */
  deploys: { running: number; succeeded: number; failed: number };
  /** Age of the oldest pending delivery, in seconds (0 when none is pending). */
  oldestPendingSeconds: number;
  /** Outbox events recorded but not yet fanned out into deliveries. */
  outboxBacklog: number;
}

/** Garbage collection so far (hook: filled in by the lifecycle module when it is wired). */
export interface GcStats {
  /** Completed collections that deleted (dry runs excluded). */
  runs: number;
  /** Bytes of blobs and manifests deleted by those collections. */
  bytesReclaimed: number;
  /** When the last collection finished, ms since the epoch; null when none ran. */
  lastRunAt: number | null;
}

export interface MetricsSources {
  stats: RegistryStats;
  inventory?: () => Promise<Inventory>;
  webhooks?: () => Promise<WebhookDeliveryStats>;
  gc?: () => Promise<GcStats>;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export interface Metrics {
  registry: MetricsRegistry;
  /** Records one finished request: one histogram observation. */
  observeRequest(route: RouteLabel, method: string, status: number, seconds: number): void;
  /** Requests being served right now (maintained by the request observer). */
  inFlight: { count: number };
}

export function createMetrics(sources: MetricsSources | RegistryStats): Metrics {
  const { stats, inventory, webhooks, gc } = 'stats' in sources ? sources : { stats: sources, inventory: undefined, webhooks: undefined, gc: undefined };
  const metrics = new MetricsRegistry();
  collectDefaultMetrics({ register: metrics });

  new Gauge({
    name: 'registry_build_info',
    help: 'Always 1; the version label tells which build is running',
    labelNames: ['version'],
    registers: [metrics],
    collect() {
      this.set({ version: VERSION }, 1);
    },
  });

  const requests = new Histogram({
    name: 'registry_http_request_duration_seconds',
    help: 'HTTP requests by route, method and status: latency histogram (its _count is the request count)',
    labelNames: ['route', 'method', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [metrics],
  });
  const inFlight = { count: 0 };
  new Gauge({
    name: 'registry_http_requests_in_flight',
    help: 'HTTP requests being served',
    registers: [metrics],
    collect() {
      this.set(inFlight.count);
    },
  });

  const fromStats = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [metrics],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  fromStats('registry_upload_bytes_total', 'Blob bytes received from clients in uploads (pushed)', () => stats.uploadedBytes);
  fromStats('registry_blobs_committed_total', 'Blobs completed from uploads', () => stats.blobsCommitted);
  fromStats('registry_blobs_mounted_total', 'Blobs linked into a repository without an upload (mount or HEAD)', () => stats.blobsMounted);
  fromStats('registry_served_bytes_total', 'Blob bytes served to clients (pulled)', () => stats.servedBytes);
  fromStats('registry_redirected_pulls_total', 'Blob GETs answered with a redirect to the object store (storage.redirect)', () => stats.redirectedPulls);

  if (inventory) {
    const read = shared(inventory);
    const gauge = (name: string, help: string, pick: (value: Inventory) => number) =>
      new Gauge({
        name,
        help,
        registers: [metrics],
        async collect() {
          const value = await read();
          if (value) this.set(pick(value));
        },
      });
    gauge('registry_repositories', 'Repositories', (v) => v.repositories);
    gauge('registry_blobs', 'Distinct blobs stored', (v) => v.blobs);
    gauge('registry_manifests', 'Distinct manifests stored', (v) => v.manifests);
    gauge('registry_tags', 'Tags in all repositories', (v) => v.tags);
    gauge('registry_storage_bytes', 'Bytes stored: distinct blobs plus manifests', (v) => v.blobBytes + v.manifestBytes);
    gauge('registry_uploads_in_progress', 'Upload sessions started and not yet completed or cancelled', (v) => v.uploadSessions);
  }

  if (webhooks) {
    const read = shared(webhooks);
    new Gauge({
      name: 'registry_webhook_deliveries',
      help: 'Webhook deliveries in the delivery log by outcome (delivered and failed ones are pruned after webhooks.retentionMs)',
      labelNames: ['state'],
      registers: [metrics],
      async collect() {
        const value = await read();
        if (!value) return;
        const { byState } = value;
        for (const state of ['pending', 'delivered', 'failed'] as const) this.set({ state }, byState[state]);
      },
    });
    new Gauge({
      name: 'registry_webhook_deploys',
      help: 'Deploy results reported back on webhook deliveries: the latest report of each delivery and agent, by status',
      labelNames: ['status'],
      registers: [metrics],
      async collect() {
        const value = await read();
        if (!value) return;
        for (const status of ['running', 'succeeded', 'failed'] as const) this.set({ status }, value.deploys[status]);
      },
    });
    new Gauge({
      name: 'registry_webhook_delivery_lag_seconds',
      help: 'Age of the oldest webhook delivery still pending (0 when none is)',
      registers: [metrics],
      async collect() {
        const value = await read();
        if (value) this.set(value.oldestPendingSeconds);
      },
    });
    new Gauge({
      name: 'registry_webhook_outbox_backlog',
      help: 'Recorded events not yet turned into webhook deliveries',
      registers: [metrics],
      async collect() {
        const value = await read();
        if (value) this.set(value.outboxBacklog);
      },
    });
  }

  if (gc) {
    const read = shared(gc);
    new Counter({
      name: 'registry_gc_runs_total',
      help: 'Garbage collections completed (dry runs excluded)',
      registers: [metrics],
      async collect() {
        const value = await read();
        if (!value) return;
        this.reset();
        this.inc(value.runs);
      },
    });
    new Counter({
      name: 'registry_gc_reclaimed_bytes_total',
      help: 'Bytes deleted by garbage collection',
      registers: [metrics],
      async collect() {
        const value = await read();
        if (!value) return;
        this.reset();
        this.inc(value.bytesReclaimed);
      },
    });
    new Gauge({
      name: 'registry_gc_last_run_timestamp_seconds',
      help: 'When the last garbage collection finished (0: never)',
      registers: [metrics],
      async collect() {
        const value = await read();
        if (value) this.set(value.lastRunAt === null ? 0 : value.lastRunAt / 1000);
      },
    });
  }

  return {
    registry: metrics,
    observeRequest(route, method, status, seconds) {
      requests.observe({ route, method, status: String(status) }, seconds);
    },
    inFlight,
  };
}

/**
 * One read shared by the gauges of a scrape: prom-client collects every metric at once, so the
 * read in flight is reused and forgotten as soon as it settles (the next scrape reads afresh).
 */
function shared<T>(read: () => Promise<T>): () => Promise<T | null> {
  let pending: Promise<T | null> | null = null;
  return () => {
    // A failed read leaves its gauges out of this scrape instead of failing the whole scrape.
    pending ??= read()
      .catch(() => null)
      .finally(() => {
        pending = null;
      });
    return pending;
  };
}
