/**
 * Failed-login throttling, per account and per client address: after `max` failures within
 * the window, further attempts are refused until the oldest of them leaves the window.
 * Memory is bounded: at most `maxKeys` keys are tracked, the least recently failed dropped first.
 */

export interface ThrottleLimits {
  maxFailuresPerAccount: number;
  maxFailuresPerAddress: number;
  windowSeconds: number;
}

/** What a login attempt is counted against. */
export interface LoginKeys {
  account: string | null;
  address: string;
}

const DEFAULT_MAX_KEYS = 10_000;

export class LoginThrottle {
  /** Failure times (ms) per key, oldest first; Map order is least recently failed first. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: ThrottleLimits,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = DEFAULT_MAX_KEYS,
  ) {}

  /** Seconds until an attempt is allowed again, or 0 when it may go ahead now. */
  retryAfter(keys: LoginKeys): number {
    const waits = this.entries(keys).map(([key, max]) => this.waitFor(key, max));
    return Math.max(0, ...waits);
  }

  /** Counts a failed attempt against the account and the address. */
  recordFailure(keys: LoginKeys): void {
    const now = this.now();
    for (const [key, max] of this.entries(keys)) {
      const times = this.recent(key, now);
      times.push(now);
      // Only the newest `max` failures decide anything.
      while (times.length > max) times.shift();
      this.failures.delete(key);
      this.failures.set(key, times);
    }
    while (this.failures.size > this.maxKeys) {
      const oldest = this.failures.keys().next().value as string;
      this.failures.delete(oldest);
    }
  }

  /** A successful login clears the account's failures (the address keeps its count). */
  recordSuccess(keys: LoginKeys): void {
    if (keys.account !== null) this.failures.delete(accountKey(keys.account));
  }

  private entries(keys: LoginKeys): Array<[string, number]> {
    const entries: Array<[string, number]> = [[`address:${keys.address}`, this.limits.maxFailuresPerAddress]];
    if (keys.account !== null) entries.push([accountKey(keys.account), this.limits.maxFailuresPerAccount]);
    return entries;
  }

  private waitFor(key: string, max: number): number {
    const now = this.now();
    const times = this.recent(key, now);
    if (times.length < max) return 0;
    const oldest = times[times.length - max]!;
    return Math.max(1, Math.ceil((oldest + this.limits.windowSeconds * 1000 - now) / 1000));
  }

  /** The key's failures still inside the window (expired ones are dropped). */
  private recent(key: string, now: number): number[] {
    const times = this.failures.get(key);
    if (!times) return [];
    const cutoff = now - this.limits.windowSeconds * 1000;
    while (times.length > 0 && times[0]! <= cutoff) times.shift();
    if (times.length === 0) this.failures.delete(key);
    return times;
  }
}

function accountKey(account: string): string {
  return `account:${account}`;
}
