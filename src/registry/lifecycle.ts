/**
 * The lifecycle services an operator drives (admin API, CLI, schedule): garbage collection,
 * usage reports, fsck, and the collection schedule, assembled over a registry and its
 * LifecycleStore.
 */
import { Fsck } from './fsck.js';
import { GarbageCollector, type GcHooks, type GcReport, type GcSettings } from './gc.js';
import type { LifecycleStore, RegistryUsage, RepositoryUsage } from './lifecycle-store.js';
import { isRegistryError } from './errors.js';
import type { Registry } from './registry.js';

export interface LifecycleSettings extends GcSettings {
  /** Seconds between scheduled collections; 0: no schedule. */
  intervalSeconds: number;
}

export interface LifecycleOptions {
  clock?: () => number;
  hooks?: GcHooks;
}

export interface UsageReport {
  totals: RegistryUsage;
  repositories: RepositoryUsage[];
}

export class UsageService {
  constructor(private readonly store: LifecycleStore) {}

  async registry(): Promise<UsageReport> {
    return { totals: await this.store.registryUsage(), repositories: await this.store.repositoriesUsage() };
  }

  async repository(name: string): Promise<RepositoryUsage | null> {
    return this.store.repositoryUsage(name);
  }
}

export interface ScheduleListener {
  onReport(report: GcReport): void;
  onError(error: unknown): void;
  /** A collection was due, but another process (replica, CLI, admin API) holds the collection lease: it runs there instead. */
  onBusy?(holder: string): void;
}

/**
 * Runs a collection every `intervalSeconds`, counting from the last one recorded in the
 * database by any process. With replicas every one runs a schedule, and one collects: when the
 * time comes, a replica that finds a collection finished since by another reschedules from it,
 * and one that finds the collection lease taken lets that collection be (onBusy, no warning).
 */
export class GcScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;
  private dueAt: number | null = null;

  constructor(
    private readonly gc: GarbageCollector,
    private readonly store: LifecycleStore,
    private readonly intervalSeconds: number,
    private readonly listener: ScheduleListener,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Schedules the next collection; does nothing when the interval is 0. */
  async start(): Promise<void> {
    if (this.intervalSeconds <= 0 || !this.stopped) return;
    this.stopped = false;
    const interval = this.intervalSeconds * 1000;
    const [last] = await this.store.gcRuns(1);
    // Overdue (or never run on an old registry): soon after start, not at once, so start-up stays quick.
    const due = last ? last.finishedAt + interval - this.clock() : interval;
    this.schedule(Math.max(due, Math.min(interval, 60_000)));
  }

  /** When the next scheduled collection starts (ms since the epoch); null when none is scheduled or one is running. */
  nextRunAt(): number | null {
    return this.stopped ? null : this.dueAt;
  }

  /** Cancels the schedule and waits for a collection in progress to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Collects unless another process did within the interval (then waits for the next one counted from it). */
  private async runIfDue(): Promise<void> {
    const interval = this.intervalSeconds * 1000;
    let next = interval;
    try {
      const [last] = await this.store.gcRuns(1);
      const sinceLast = last ? this.clock() - last.finishedAt : Infinity;
      if (sinceLast < interval * 0.9) {
        next = interval - sinceLast;
      } else {
        this.listener.onReport(await this.gc.run({ trigger: 'schedule' }));
      }
    } catch (error) {
      const holder = isRegistryError(error) && error.code === 'CONFLICT' ? (error.detail as { holder?: string } | undefined)?.holder : undefined;
      if (holder !== undefined) this.listener.onBusy?.(holder);
      else this.listener.onError(error);
    }
    this.schedule(next);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.dueAt = this.clock() + delayMs;
    this.timer = setTimeout(() => {
      this.dueAt = null;
      this.running = this.runIfDue().finally(() => (this.running = undefined));
    }, delayMs);
    this.timer.unref();
  }
}

export interface Lifecycle {
  gc: GarbageCollector;
  fsck: Fsck;
  usage: UsageService;
  settings: LifecycleSettings;
  /** A schedule for this lifecycle (started by the server, not by the CLI). */
  scheduler(listener: ScheduleListener): GcScheduler;
  /** When this process's schedule starts its next collection (ms since the epoch); null: none scheduled. */
  nextScheduledRun(): number | null;
}

export function createLifecycle(registry: Registry, store: LifecycleStore, settings: LifecycleSettings, options: LifecycleOptions = {}): Lifecycle {
  const clock = options.clock ?? Date.now;
  let schedule: GcScheduler | undefined;
  const gc = new GarbageCollector(registry.store, registry.metadata, store, registry.uploads, registry.policies, settings, options.clock, options.hooks);
  return {
    gc,
    fsck: new Fsck(registry.store, registry.metadata, store, settings.gracePeriodSeconds, clock),
    usage: new UsageService(store),
    settings,
    scheduler: (listener) => (schedule = new GcScheduler(gc, store, settings.intervalSeconds, listener, clock)),
    nextScheduledRun: () => schedule?.nextRunAt() ?? null,
  };
}
