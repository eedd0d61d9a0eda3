/**
 * Login throttling, per account and per client address. An attempt is **reserved** before the
 * credentials are checked and counts as a failure unless it is settled otherwise, so however
 * many requests arrive at once, no more than the limit's number of checks run per account and
 * per address within the window; the rest are refused with the time to wait.
 *
 * `LoginThrottle` is the port: this file holds the in-memory implementation for one process.
 * Several replicas need a shared one (a database table with a row lock per key) behind the
 * same three calls.
 */
import ipaddr from 'ipaddr.js';

export interface ThrottleLimits {
  maxFailuresPerAccount: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
  /** How many accounts and addresses are tracked at most (the memory bound). */
  maxTrackedKeys: number;
}

/** What a login attempt is counted against. */
export interface LoginKeys {
  account: string | null;
  address: string;
}

/** An attempt counted against its keys until it is settled (an implementation may carry more, such as a row id). */
export interface Reservation {
  readonly keys: LoginKeys;
  /** When it was reserved (epoch ms). */
  readonly at: number;
}

/** Refused: wait this long (at least 1 s) before trying again. */
export interface Refusal {
  readonly retryAfterSeconds: number;
}

/**
 * How a reserved attempt ended: `failed` keeps it counted; `succeeded` clears the account's
 * failures and releases the address's count of it; `released` forgets it (the credentials were
 * never judged, e.g. the server was too busy to check them).
 */
export type AttemptOutcome = 'failed' | 'succeeded' | 'released';

export interface LoginThrottle {
  /** Counts an attempt against the account and the address, or refuses it when either is at its limit. */
  reserve(keys: LoginKeys): Promise<Reservation | Refusal>;
  settle(reservation: Reservation, outcome: AttemptOutcome): Promise<void>;
  /** Seconds until an attempt would be allowed (0: now), counting nothing. */
  retryAfter(keys: LoginKeys): Promise<number>;
}

export function isRefusal(result: Reservation | Refusal): result is Refusal {
  return 'retryAfterSeconds' in result;
}

/**
 * A key's attempts inside the window: every time (ms) oldest first, never more than the key's
 * limit, and the times of those still being checked. Plain number arrays keep a key near 0.5 KiB.
 */
interface Entry {
  times: number[];
  inFlight: number[];
  limit: number;
}

/**
 * The in-memory throttle. Memory is bounded by `maxTrackedKeys` without ever forgetting what
 * matters: a key at its limit (locked) or with a check still running is pinned and outlives its
 * window whatever else arrives; only keys below their limit with nothing in flight are evicted,
 * least recently attempted first. When every tracked key is pinned, attempts for keys not yet
 * tracked are refused until some expire (fail closed): a flood of new names or addresses can
 * never unlock an account.
 */
export class MemoryLoginThrottle implements LoginThrottle {
  /** Keys below their limit, nothing in flight: evictable; Map order is least recently attempted first. */
  private readonly open = new Map<string, Entry>();
  /** Keys at their limit or with a check in flight: never evicted. */
  private readonly pinned = new Map<string, Entry>();

  constructor(
    private readonly limits: ThrottleLimits,
    private readonly now: () => number = Date.now,
    private readonly onSaturated: () => void = () => undefined,
  ) {}

  async reserve(keys: LoginKeys): Promise<Reservation | Refusal> {
    const now = this.now();
    const entries = this.keysOf(keys).map(([key, limit]) => ({ key, limit, entry: this.current(key, limit, now) }));
    const wait = Math.max(0, ...entries.map(({ entry }) => (entry ? this.waitFor(entry, now) : 0)));
    if (wait > 0) return { retryAfterSeconds: wait };
    const missing = entries.filter(({ entry }) => entry === undefined).length;
    if (!this.makeRoom(missing, new Set(entries.map(({ key }) => key)), now)) {
      this.onSaturated();
      return { retryAfterSeconds: this.soonestUnpin(now) };
    }
    for (const { key, limit, entry } of entries) {
      const counted = entry ?? { times: [], inFlight: [], limit };
      counted.times = [...counted.times, now];
      counted.inFlight = [...counted.inFlight, now];
      this.place(key, counted);
    }
    return { keys, at: now };
  }

  async settle(reservation: Reservation, outcome: AttemptOutcome): Promise<void> {
    for (const [key, limit] of this.keysOf(reservation.keys)) {
      const entry = this.current(key, limit, this.now());
      if (!entry) continue;
      entry.inFlight = withoutOne(entry.inFlight, reservation.at);
      if (outcome === 'released' || (outcome === 'succeeded' && key.startsWith(ADDRESS))) {
        entry.times = withoutOne(entry.times, reservation.at);
      } else if (outcome === 'succeeded') {
        // A success clears the account's failures; checks of it still in flight stay counted.
        entry.times = [...entry.inFlight];
      }
      this.place(key, entry);
    }
  }

  async retryAfter(keys: LoginKeys): Promise<number> {
    const now = this.now();
    return Math.max(0, ...this.keysOf(keys).map(([key, limit]) => {
      const entry = this.current(key, limit, now);
      return entry ? this.waitFor(entry, now) : 0;
    }));
  }

  /** How many keys are tracked (tests and metrics). */
  get size(): number {
    return this.open.size + this.pinned.size;
  }

  private keysOf(keys: LoginKeys): Array<[string, number]> {
    const result: Array<[string, number]> = [[ADDRESS + addressGroup(keys.address), this.limits.maxFailuresPerAddress]];
    if (keys.account !== null) result.push([ACCOUNT + keys.account, this.limits.maxFailuresPerAccount]);
    return result;
  }

  /** The key's entry with attempts older than the window dropped (and the entry re-filed), or undefined. */
  private current(key: string, limit: number, now: number): Entry | undefined {
    const entry = this.open.get(key) ?? this.pinned.get(key);
    if (!entry) return undefined;
    entry.limit = limit;
    const cutoff = now - this.limits.windowSeconds * 1000;
    if (entry.times.length > 0 && entry.times[0]! <= cutoff) {
      entry.times = entry.times.filter((at) => at > cutoff);
      entry.inFlight = entry.inFlight.filter((at) => at > cutoff);
      this.place(key, entry);
      if (entry.times.length === 0) return undefined;
    }
    return entry;
  }

  private waitFor(entry: Entry, now: number): number {
    if (entry.times.length < entry.limit) return 0;
    const oldest = entry.times[entry.times.length - entry.limit]!;
    return Math.max(1, Math.ceil((oldest + this.limits.windowSeconds * 1000 - now) / 1000));
  }

  /** Files an entry where it belongs (the end of its map: most recently touched), or forgets it when empty. */
  private place(key: string, entry: Entry): void {
    this.open.delete(key);
    this.pinned.delete(key);
    if (entry.times.length === 0) return;
    const pinned = entry.times.length >= entry.limit || entry.inFlight.length > 0;
    (pinned ? this.pinned : this.open).set(key, entry);
  }

  /**
   * Frees room for `count` new keys: pinned keys that have aged out first, then the least
   * recently attempted open ones, never one of `keep` (the keys the attempt itself counts against).
   */
  private makeRoom(count: number, keep: ReadonlySet<string>, now: number): boolean {
    if (this.size + count <= this.limits.maxTrackedKeys) return true;
    this.sweepPinned(now);
    for (const key of this.open.keys()) {
      if (this.size + count <= this.limits.maxTrackedKeys) break;
      if (!keep.has(key)) this.open.delete(key);
    }
    return this.size + count <= this.limits.maxTrackedKeys;
  }

  /** Re-files the longest-untouched pinned keys whose attempts have aged (bounded work per call). */
  private sweepPinned(now: number): void {
    const oldest = [...take(this.pinned, SWEEP_BUDGET)];
    for (const [key, entry] of oldest) this.current(key, entry.limit, now);
  }

  private soonestUnpin(now: number): number {
    const first = this.pinned.values().next();
    return first.done ? 1 : Math.max(1, this.waitFor(first.value, now));
  }
}

/** The list without its first occurrence of `value` (a copy of the exact length). */
function withoutOne(list: number[], value: number): number[] {
  const index = list.indexOf(value);
  return index < 0 ? list : [...list.slice(0, index), ...list.slice(index + 1)];
}

function* take<K, V>(map: Map<K, V>, count: number): Generator<[K, V]> {
  if (count <= 0) return;
  for (const item of map) {
    yield item;
    if (--count <= 0) return;
  }
}

const ADDRESS = 'address:';
const ACCOUNT = 'account:';
/** Pinned keys looked at per reservation that needs room: keeps a saturated table cheap to ask. */
const SWEEP_BUDGET = 64;

/**
 * The address a failure counts against: IPv4 addresses one by one (IPv4-mapped IPv6 as the
 * IPv4 address), IPv6 by /64, the smallest block a site is given, so that one host cannot
 * walk its own prefix to get a fresh allowance per address.
 */
export function addressGroup(address: string): string {
  const bare = address.replace(/%.*$/, '');
  if (!ipaddr.isValid(bare)) return address;
  let parsed = ipaddr.parse(bare);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${parts.join(':')}::/64`;
}
