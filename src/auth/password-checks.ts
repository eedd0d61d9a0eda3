/**
 * Bounds password hashing. scrypt runs on libuv's thread pool (4 threads), which file reads
 * and writes share: 200 concurrent logins once queued every blob read and the readiness probe
 * behind seconds of hashing. At most `concurrency` checks run at once (so the pool always has
 * threads left for I/O), at most `maxQueued` wait, and beyond that a login is refused at once.
 */
import pLimit, { type LimitFunction } from 'p-limit';

/** Too many password checks are running or waiting: the login was not judged; retry shortly. */
export class PasswordChecksBusy extends Error {
  constructor() {
    super('too many password checks in progress');
    this.name = 'PasswordChecksBusy';
  }
}

export interface PasswordCheckLimits {
  concurrency: number;
  maxQueued: number;
}

export class PasswordCheckLimiter {
  private readonly limit: LimitFunction;

  constructor(private readonly limits: PasswordCheckLimits) {
    this.limit = pLimit(limits.concurrency);
  }

  /** Runs `check` when a slot is free; throws PasswordChecksBusy at once when the queue is full. */
  run<T>(check: () => Promise<T>): Promise<T> {
    if (this.limit.activeCount >= this.limits.concurrency && this.limit.pendingCount >= this.limits.maxQueued) {
      return Promise.reject(new PasswordChecksBusy());
    }
    return this.limit(check);
  }

  /** Checks running and waiting (tests, metrics). */
  get load(): { active: number; queued: number } {
    return { active: this.limit.activeCount, queued: this.limit.pendingCount };
  }
}
