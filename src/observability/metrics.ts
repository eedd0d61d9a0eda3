/**
 * Prometheus metrics (prom-client): process metrics plus the registry's own counters, read
 * from the domain's RegistryStats at scrape time. One prom-client Registry per app, so
 * several registries in one process (tests) never share counters.
 */
import { collectDefaultMetrics, Counter, Registry as MetricsRegistry } from 'prom-client';
import type { RegistryStats } from '../registry/stats.js';

export function createMetrics(stats: RegistryStats): MetricsRegistry {
  const metrics = new MetricsRegistry();
  collectDefaultMetrics({ register: metrics });
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
  fromStats('registry_upload_bytes_total', 'Blob bytes received from clients in uploads', () => stats.uploadedBytes);
  fromStats('registry_blobs_committed_total', 'Blobs completed from uploads', () => stats.blobsCommitted);
  fromStats('registry_blobs_mounted_total', 'Blobs linked into a repository without an upload (mount or HEAD)', () => stats.blobsMounted);
  fromStats('registry_served_bytes_total', 'Blob bytes served to clients', () => stats.servedBytes);
  return metrics;
}
