/**
 * A per-process cache of the reads every request repeats on PostgreSQL (the account and grants
 * behind a token, a repository's link to a blob behind a HEAD), so that a hot request takes no
 * round trip, kept correct across replicas:
 * - any change to the rows behind it, by any replica or by hand, makes PostgreSQL notify every
 *   replica (triggers, notifications.ts), and the cache forgets everything at once;
 * - this process's own changes also forget at once, before their answer is sent
 *   (`invalidate()`), so a client reads its own writes on the replica it wrote through;
 * - while the listening connection is down, nothing is cached or answered from the cache;
 * - a read that was in flight when a change arrived is not kept (it may predate the change);
 * - every entry expires after `ttlMs` anyway: the bound on staleness if a notice is ever lost
 *   without the connection noticing.
 * Only found rows are cached: something that appears (a new link, a new user) is read at once.
 */
import { BoundedMap } from '../../runtime/bounded-map.js';
import type { Channel, ChangeFeed } from './notifications.js';

export interface ReadCacheOptions {
  ttlMs: number;
  maxEntries: number;
  now?: () => number;
}

export const READ_CACHE_DEFAULTS: ReadCacheOptions = { ttlMs: 2_000, maxEntries: 20_000 };

export class ReadCache {
  private readonly entries: BoundedMap<string, { value: unknown; until: number }>;
  private generation = 0;
  private feed: ChangeFeed | undefined;
  private readonly now: () => number;

  constructor(
    /** The process's change feed, started the first time the cache is used. */
    private readonly openFeed: () => ChangeFeed,
    private readonly channel: Channel,
    private readonly options: ReadCacheOptions = READ_CACHE_DEFAULTS,
  ) {
    this.entries = new BoundedMap(options.maxEntries);
    this.now = options.now ?? Date.now;
  }

  /** The cached value of `key`, or what `load` reads (kept when found and nothing changed meanwhile). */
  async get<V>(key: string, load: () => Promise<V | null>): Promise<V | null> {
    const feed = this.listeningFeed();
    if (!feed) return load();
    const entry = this.entries.get(key);
    if (entry && entry.until > this.now()) return entry.value as V;
    const generation = this.generation;
    const value = await load();
    if (value !== null && generation === this.generation && feed.listening) {
      this.entries.set(key, { value, until: this.now() + this.options.ttlMs });
    }
    return value;
  }

  /** Runs a change, then forgets (also when it failed: it may have committed before failing). */
  async forgetAfter<T>(change: () => Promise<T>): Promise<T> {
    try {
      return await change();
    } finally {
      this.invalidate();
    }
  }

  /** Forgets everything, and whatever reads are in flight. */
  invalidate(): void {
    this.generation++;
    this.entries.clear();
  }

  private listeningFeed(): ChangeFeed | undefined {
    if (!this.feed) {
      this.feed = this.openFeed();
      this.feed.onChange(this.channel, () => this.invalidate());
    }
    return this.feed.listening ? this.feed : undefined;
  }
}
